# Mistake: on a cp copy D of B (opened with the extension, so it forked), forget D's former id,
# which is B's live id (README: "never one that is some device's device_id now"; sync_forget does not check).
import fleet
from fleet import *
fleet.PFX = 'v3_'
new('A'); new('B'); new('C')
q(D['A'], "INSERT INTO t VALUES('r1','v0',NULL)")
for n in 'ABC': ins(n, 'start')
sync_all(2)
close('B'); shutil.copy(paths['B'], path('D')); paths['D'] = path('D'); reopen('B'); reopen('D')
f = status(D['D'])['former_ids']
print('D former', [x[:6] for x in f], 'B id', did(D['B'])[:6])
print('D forgets its former id:', q1(D['D'], "SELECT sync_forget(?)", f[0]))
ins('B', 'unsynced-when-forgotten'); ins('D', 'x'); edit_r1('B', 1)
sync_all(2)
print('errors:', [e[:90] for e in errors])
print('B forks ->', q1(D['B'], "SELECT sync_fork()")[:6])
sync_all(4)
check('v3')
