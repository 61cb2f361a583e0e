# Ring of 3: A->B, B->C, C->A only; each compacts after every import.
# A edits row r1 every round; C makes one edit of row r2 at round EDIT_ROUND, before importing
# the bundle that carries the others' newer points (a point "on its way round").
import sys, os; from synclib import *
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 25
EDIT_ROUND = int(sys.argv[2]) if len(sys.argv) > 2 else 3
AUTO = len(sys.argv) > 3 and sys.argv[3] == 'auto'
EDITOR2 = sys.argv[4] if len(sys.argv) > 4 else 'C'
D = {n: fresh(f't2b_{n}.db') for n in 'ABC'}
A, B, C = D['A'], D['B'], D['C']
names = {did(c): n for n, c in D.items()}
if AUTO:
    for c in D.values():
        q(c, "INSERT OR REPLACE INTO _sync_state(name, value) VALUES ('compact_every', 1)")
q(A, "INSERT INTO t VALUES('r1','v0',NULL)")
q(A, "INSERT INTO t VALUES('r2','x0',NULL)")
ring = [('A', 'B'), ('B', 'C'), ('C', 'A')]
def hop(s, d):
    r = send(D[s], D[d])
    if r.get('pending_count') or r.get('discarded_count'):
        print('   hop', s, d, {k: r[k] for k in ('applied_count', 'pending_count', 'discarded_count', 'conflict_count')})
    if not AUTO:
        compact(D[d])
for rnd in range(1, ROUNDS + 1):
    q(A, "UPDATE t SET v=? WHERE id='r1'", f"v{rnd}")
    for s, d in ring:
        if rnd == EDIT_ROUND and d == EDITOR2:
            q(D[EDITOR2], "UPDATE t SET w='edited-by-'||? WHERE id=?", EDITOR2, os.environ.get('ROW','r2'))
        hop(s, d)
    if rnd in (1, 2, 3, 5, 10, 15, 20, ROUNDS):
        print(f"round {rnd:2}: floors " + ' '.join(f"{n}={floors(c)}{floors_by_dev(c, names)} rowops={rowops(c)}" for n, c in D.items()))
# extra rounds with no edits so everything settles
for k in range(3):
    for s, d in ring:
        hop(s, d)
report(D, f'ring rounds={ROUNDS} edit_round={EDIT_ROUND} auto={AUTO}')
for n, c in D.items():
    print(n, 'floors by device', floors_by_dev(c, names), 'stable', {names.get(k, k[:6]): v for k, v in status(c)['stable'].items()})
