# Random fleet: 3-4 devices, random writes, random pairwise syncs (each import followed by sync_compact),
# and at most a couple of user mistakes (backup put back and written on, cp copy written without the
# extension, cp copy opened with it). Then every pair syncs several rounds. Checks convergence.
import sys, random, fleet
from fleet import *
seed = int(sys.argv[1]); MIST = sys.argv[2] if len(sys.argv) > 2 else 'bc'
STEPS = int(sys.argv[3]) if len(sys.argv) > 3 else 40
rnd = random.Random(seed)
MAXM = int(os.environ.get('MAXM', '2'))
fleet.PFX = f'fz{seed}_'
import io, contextlib
log = []
def act(*a): log.append(a)
new('A'); new('B'); new('C')
q(D['A'], "INSERT INTO t VALUES('r1','v0',NULL)")
sync_all(1)
backups = {}
nmist = 0
seen = {}
def track(step):
    for m, c in D.items():
        for (rid,) in q(c, 'SELECT id FROM t'):
            seen.setdefault(rid, set()).add(m)
for step in range(STEPS):
    track(step)
    x = rnd.random(); names = list(D)
    n = rnd.choice(names)
    if x < 0.25:
        ins(n, f's{step}'); act('ins', n, step)
    elif x < 0.45:
        edit_r1(n, step); act('edit', n, step)
    elif x < float(os.environ.get('PHOP', '0.85')):
        if os.environ.get('TOPO') == 'ring':
            order = sorted(names); i = rnd.randrange(len(order)); s, d = order[i], order[(i + 1) % len(order)]
        else:
            s, d = rnd.sample(names, 2)
        if os.environ.get('PRECOMPACT'): compact(D[s])
        hop(s, d); act('hop', s, d)
    elif x < 0.92 and 'b' in MIST:
        if n in backups and nmist < MAXM:
            close(n); shutil.copy(backups.pop(n), paths[n]); reopen(n); act('restore', n); nmist += 1
            ins(n, f'onbak{step}'); act('ins', n, step)
        elif n not in backups:
            close(n); backups[n] = PFX + n + f'.bak{step}'; shutil.copy(paths[n], backups[n]); reopen(n); act('backup', n)
    elif 'c' in MIST and nmist < MAXM and 'D' not in D:
        close(n); shutil.copy(paths[n], path('D')); paths['D'] = path('D'); reopen(n)
        noext = rnd.random() < 0.5
        if noext:
            c = open_dev(paths['D'], init=False, load=False)
            q(c, "INSERT INTO t VALUES(?, 'D', NULL)", f'D-noext{step}'); writes.append(('D', f'D-noext{step}')); c.close()
        reopen('D'); act('copy', n, 'noext' if noext else 'ext'); nmist += 1
        ins('D', f's{step}')
track(STEPS)
print('seed', seed, 'actions:', [a for a in log if a[0] in ('backup', 'restore', 'copy')])
sync_all(5)
ok = check(f'fuzz seed {seed}')
final = set(r[0] for r in table(list(D.values())[0]))
for n_, rid in writes:
    if rid not in final:
        holders = sorted(seen.get(rid, []))
        lostlisted = any(json.loads(x[3]).get('id') == rid for c in D.values() for x in lost(c))
        wpos = next((i for i, a in enumerate(log) if a[0] in ('ins',) and a[1] == n_ and rid.endswith(str(a[2]))), -1)
        only_writer_restored = holders == [n_] and any(a[0] == 'restore' and a[1] == n_ for a in log[wpos+1:])
        verdict = 'gone with the backup put back (only its writer ever held it)' if only_writer_restored else ('listed in sync_lost' if lostlisted else 'PROBLEM: vanished, no sync_lost entry')
        print('  ', rid, 'held before final sync by', holders, '->', verdict)
if '-v' in sys.argv: print(log)
print('RESULT seed', seed, 'identical' if ok else 'DIFFERENT', 'errors', len(errors))
for e in errors[:4]: print('  ', e)
