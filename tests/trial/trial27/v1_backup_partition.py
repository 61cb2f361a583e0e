# Backup of A put back and written on; the restored A first syncs (and compacts) only with C,
# which never got A's post-backup writes; B (which did) meets them later.
import sys, fleet
from fleet import *
fleet.PFX = 'v1_'
VAR = sys.argv[1] if len(sys.argv) > 1 else 'x'
new('A'); new('B'); new('C')
q(D['A'], "INSERT INTO t VALUES('r1','v0',NULL)")
for n in 'ABC': ins(n, 'start')
sync_all(2)
for k in range(3):
    edit_r1('A', k); sync_all(1)
close('A'); shutil.copy(paths['A'], PFX + 'A.bak'); reopen('A')
for k in range(3): ins('A', f'after-backup{k}'); edit_r1('A', 10 + k)
sync_all(2, among=['A', 'B'])          # only B gets them (and compacts)
close('A'); shutil.copy(PFX + 'A.bak', paths['A']); reopen('A')
for k in range(3): ins('A', f'on-backup{k}'); edit_r1('A', 20 + k)
if VAR == 'x':
    sync_all(3, among=['A', 'C'])      # restored A and C compact together first
    ins('C', 'mid'); ins('B', 'mid')
    sync_all(5)
elif VAR == 'y':
    sync_all(3, among=['A', 'C'])
    for k in range(3): ins('B', f'mid{k}'); ins('C', f'mid{k}'); ins('A', f'mid{k}'); sync_all(1, among=['A', 'C']); sync_all(1, among=['B', 'C'])
    sync_all(5)
check('v1 ' + VAR)
print('errors', errors[:5])
