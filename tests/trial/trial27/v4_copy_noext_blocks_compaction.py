# cp copy of B written by a connection without the extension, then opened with it.
# Both B and the copy fork; their shared former id then holds `stable` (compaction) back for good
# unless forgotten -- although the README says never to forget a copy's former id.
import sys, fleet
from fleet import *
fleet.PFX = 'v4_'
new('A'); new('B')
q(D['A'], "INSERT INTO t VALUES('r1','v0',NULL)"); sync_all(2)
close('B'); shutil.copy(paths['B'], path('D')); paths['D'] = path('D'); reopen('B')
c = open_dev(paths['D'], init=False, load=False); q(c, "INSERT INTO t VALUES('D-noext','D',NULL)"); c.close()
reopen('D'); sync_all(3)
for n, c in D.items(): print(n, 'id', did(c)[:6], 'former', [x[:6] for x in status(c)['former_ids']])
def grow(k):
    for r in range(k): edit_r1('A', r); sync_all(1)
    print('  rowops per device:', {n: rowops(c) for n, c in D.items()}, 'floors', {n: floors(c) for n, c in D.items()})
grow(10)
if len(sys.argv) > 1:
    f = status(D['B'])['former_ids'][0]
    print('forget shared former id', f[:6], q1(D['A'], "SELECT sync_forget(?)", f)); sync_all(1)
    grow(10)
check('v4')
