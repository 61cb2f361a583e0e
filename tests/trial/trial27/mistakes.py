# The mistakes users make, in a fleet compacting after every import (the helpers: fleet.py).
# usage: mistakes.py STAGES   (STAGES: letters from 'bcfkeg'; b=backup put back+written, c=cp copy
#        opened without the extension and written, k=cp copy opened with the extension (correct),
#        f=sync_forget misuse, e=new device from full bundle after compaction, g=more rounds)
import sys, shutil
import fleet
STAGES = sys.argv[1] if len(sys.argv) > 1 else 'bcfe'
fleet.PFX = PFX = 'm_' + STAGES + '_'
from fleet import *
new('A'); new('B'); new('C')
q(D['A'], "INSERT INTO t VALUES('r1','v0',NULL)")
for n in 'ABC': ins(n, 'start')
sync_all(2)
for k in range(3):
    edit_r1('A', k); edit_r1('B', k)
    sync_all(1)
check('baseline')

if 'b' in STAGES:
    print('\n### b: backup of A (file copy while closed), put back and written on before syncing')
    close('A'); shutil.copy(paths['A'], PFX + 'A.bak'); reopen('A')
    for k in range(3): ins('A', f'after-backup{k}'); edit_r1('A', 10 + k)
    sync_all(2)
    close('A'); shutil.copy(PFX + 'A.bak', paths['A']); reopen('A')   # cp over: same inode
    print('  restored A id', did(D['A'])[:6], 'former', status(D['A']).get('former_ids'))
    for k in range(3): ins('A', f'on-backup{k}'); edit_r1('A', 20 + k)
    sync_all(4)
    check('after backup put back')

if 'c' in STAGES or 'k' in STAGES:
    print('\n### c/k: cp copy of B opened as a new device D', '(written before loading the extension)' if 'c' in STAGES else '(extension loaded first)')
    close('B'); shutil.copy(paths['B'], path('D')); paths['D'] = path('D'); reopen('B')
    if 'c' in STAGES:
        try:
            D['D'] = open_dev(paths['D'], init=False, load=False)
            q(D['D'], "INSERT INTO t VALUES('D-noext',  'D', NULL)")
            writes.append(('D', 'D-noext'))
            print('  write on the copy without the extension: accepted')
        except Exception as e:
            print('  write on the copy without the extension refused:', e)
        D['D'].close(); del D['D']
    reopen('D')
    print('  D id', did(D['D'])[:6], 'B id', did(D['B'])[:6], 'D former', [x[:6] for x in status(D['D']).get('former_ids', [])])
    ins('D', 'first'); ins('B', 'after-copy'); edit_r1('D', 30)
    sync_all(4)
    check('after cp copy')

if 'f' in STAGES:
    print('\n### f: sync_forget of a device that still syncs (C), from A')
    cid = did(D['C'])
    print('  forget:', q1(D['A'], "SELECT sync_forget(?)", cid))
    ins('C', 'after-forgotten'); ins('A', 'after-forget')
    sync_all(1)
    print('  C status forgotten? errors:', errors[-3:])
    try:
        print('  C forks:', q1(D['C'], "SELECT sync_fork()")[:6])
    except Exception as e:
        print('  sync_fork refused', e)
    sync_all(4)
    check('after forget + fork')
    # correct use: forget former ids no database writes under any more
    for n, c in D.items():
        for f in status(c).get('former_ids', []):
            if f not in [did(x) for x in D.values()] and n == 'A':
                try: print('  A forgets former id', f[:6], q1(c, "SELECT sync_forget(?)", f))
                except Exception as e: print('  forget refused', e)
    sync_all(3)
    check('after forgetting former ids')

if 'e' in STAGES:
    print('\n### e: new device E set up from A\'s full bundle after compaction')
    print('  A compact:', compact(D['A']))
    new('E')
    r = j(D['E'], "SELECT sync_bundle_in(?)", q1(D['A'], "SELECT sync_bundle_out(NULL)"))
    print('  E import:', {k: r[k] for k in ('applied_count', 'pending_count', 'conflict_count', 'discarded_count')})
    print('  E == A right after import:', table(D['E']) == table(D['A']))
    ins('E', 'first')
    sync_all(4)
    check('after new device E')

if 'g' in STAGES:
    print('\n### g: 20 more rounds, A edits r1, all pairs sync+compact: does the log stay small?')
    nm = {did(c): n for n, c in D.items()}
    for r in range(20):
        edit_r1('A', 500 + r); sync_all(1)
        if r in (0, 9, 19):
            print(f'  round {r+1}:', ' '.join(f"{n}:floors={floors(c)} rowops={rowops(c)}" for n, c in D.items()))
    print('  floors by device on A:', floors_by_dev(D['A'], nm))
    check('after 20 more rounds')
print('\nimport errors:', len(errors))
for e in errors[:12]: print(' ', e)
