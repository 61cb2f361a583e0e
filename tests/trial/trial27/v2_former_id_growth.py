# After a backup put back (synced properly before writing, as the README says), the former id holds
# `stable` back until sync_forget: how do floors / row ops grow meanwhile, and after forgetting?
import sys, fleet
from fleet import *
fleet.PFX = 'v2_'
new('A'); new('B'); new('C')
q(D['A'], "INSERT INTO t VALUES('r1','v0',NULL)")
sync_all(2)
close('A'); shutil.copy(paths['A'], PFX + 'A.bak'); reopen('A')
for k in range(3): edit_r1('A', k)
sync_all(2)
close('A'); shutil.copy(PFX + 'A.bak', paths['A']); reopen('A')
# README order: first send a bundle to each other device, then import from each one made after
for d in 'BC': hop('A', d)
for s in 'BC': hop(s, 'A')
names = {did(c): n for n, c in D.items()}
def line(tag):
    print(tag, ' '.join(f"{n}: floors={floors(c)} rowops={rowops(c)} ops={status(c)['log']['ops']}" for n, c in D.items()),
          '| A former', [f[:6] for f in status(D['A'])['former_ids']], 'stable@B', {names.get(k, k[:6]): v for k, v in status(D['B'])['stable'].items()})
line('after restore+sync:')
for r in range(30):
    edit_r1('A', 100 + r); sync_all(1)
    if r in (0, 9, 29): line(f'round {r+1}:')
for f in status(D['A'])['former_ids']:
    print('forget', q1(D['A'], "SELECT sync_forget(?)", f))
for r in range(3):
    edit_r1('A', 200 + r); sync_all(1)
line('after forget + 3 rounds:')
check('v2')
