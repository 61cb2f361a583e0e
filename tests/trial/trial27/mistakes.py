# Task 3: the mistakes users make, in a fleet compacting after every import.
# usage: mistakes.py STAGES   (STAGES: letters from 'bcfe'; b=backup put back+written, c=cp copy
#        opened without the extension and written, k=cp copy opened with the extension (correct),
#        f=sync_forget misuse, e=new device from full bundle after compaction)
import sys, os, shutil, traceback
from synclib import *
STAGES = sys.argv[1] if len(sys.argv) > 1 else 'bcfe'
PFX = 'm_' + STAGES + '_'
paths = {}
D = {}
writes = []      # (dev, id, v) every tracked insert of a new row
errors = []
def path(n): return PFX + n + '.db'
def new(n):
    paths[n] = path(n); D[n] = fresh(paths[n])
def close(n):
    D[n].close(); del D[n]
def reopen(n, load=True):
    D[n] = open_dev(paths[n], init=load, load=load)
def ins(n, tag):
    rid = f"{n}-{tag}"
    q(D[n], "INSERT INTO t VALUES(?,?,NULL)", rid, n)
    writes.append((n, rid))
def edit_r1(n, k):
    q(D[n], "UPDATE t SET v=? WHERE id='r1'", f"{n}{k}")
def hop(s, d):
    try:
        peer = did(D[d])
        blob = q1(D[s], "SELECT sync_bundle_out(?)", peer)
        r = j(D[d], "SELECT sync_bundle_in(?)", blob)
        if r.get('pending_count') or r.get('discarded_count'):
            print(f"   {s}->{d}: applied={r['applied_count']} pending={r['pending_count']} discarded={r['discarded_count']} conflicts={r['conflict_count']}")
        compact(D[d])
    except Exception as e:
        msg = f"{s}->{d}: {type(e).__name__}: {str(e)[:300]}"
        errors.append(msg); print('   ERROR', msg)
def sync_all(rounds=3, label=''):
    for _ in range(rounds):
        for s in list(D):
            for d in list(D):
                if s != d:
                    hop(s, d)
def check(label):
    same, tabs = report(D, label)
    names = {did(c): n for n, c in D.items()}
    for n, c in D.items():
        for f in status(c).get('former_ids', []):
            names.setdefault(f, n + '_old')
    for n, c in D.items():
        L = lost(c)
        if L:
            print(f"  sync_lost on {n}:", [(names.get(x[0], x[0][:6]), x[1], x[3], x[4], x[6]) for x in L])
        oc = open_conf(c)
        if oc: print(f"  open conflicts on {n}:", oc)
        s = status(c)
        if s['pending']['ops']: print(f"  pending on {n}:", s['pending'])
    # every tracked write: on every device's table, or listed in some sync_lost
    lost_pks = set()
    for c in D.values():
        for x in lost(c):
            lost_pks.add(json.loads(x[3]).get('id'))
    for n, rid in writes:
        where = [m for m, t in tabs.items() if any(r[0] == rid for r in t)]
        if len(where) != len(D):
            tag = 'listed in sync_lost' if rid in lost_pks else 'VANISHED (no sync_lost entry)'
            print(f"  write {rid} by {n}: on {where or 'no device'}; {tag}")
    print('  import errors so far:', len(errors))
    return same

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
