# README: "A new device that imports one full bundle (sync_bundle_out(NULL, ...)) of a device with nothing
# pending holds that device's tables and open conflicts, nothing pending" -- after compaction.
from synclib import *
A = fresh('t3e_A.db'); B = fresh('t3e_B.db'); C = fresh('t3e_C.db')
q(A, "INSERT INTO t VALUES('r1','v0','w0')"); q(A, "INSERT INTO t VALUES('r2','x','y')")
for s, d in [(A, B), (B, A), (A, C), (C, A), (B, C), (C, B)]: send(s, d); compact(d)
for i in range(20):
    q(A, "UPDATE t SET v=? WHERE id='r1'", f"a{i}")
    for s, d in [(A, B), (B, A), (A, C), (C, A), (B, C), (C, B)]: send(s, d); compact(d)
# a conflict left open, a delete, a column-by-column edit
q(A, "UPDATE t SET v='A-side' WHERE id='r1'"); q(B, "UPDATE t SET v='B-side' WHERE id='r1'")
q(C, "DELETE FROM t WHERE id='r2'"); q(B, "UPDATE t SET w='wB' WHERE id='r1'")
for k in range(3):
    for s, d in [(A, B), (B, A), (A, C), (C, A), (B, C), (C, B)]: send(s, d); compact(d)
print('B compact:', compact(B), 'B pending', status(B)['pending']['ops'], 'B log ops', status(B)['log']['ops'])
E = fresh('t3e_E.db')
r = send(B, E, full=True)
print('E import', {k: r[k] for k in ('total_operations', 'applied_count', 'pending_count', 'conflict_count', 'discarded_count')})
print('E table == B table:', table(E) == table(B), table(E))
print('E open conflicts == B:', open_conf(E) == open_conf(B), open_conf(E), '| B:', open_conf(B))
print('E pending', status(E)['pending'])
# E then syncs with C only (not the source of its full bundle), edits, and all converge
q(E, "UPDATE t SET w='wE' WHERE id='r1'")
for k in range(3):
    for s, d in [(E, C), (C, E), (A, B), (B, A), (A, C), (C, A), (B, C), (C, B), (E, A), (A, E), (E, B), (B, E)]:
        send(s, d); compact(d)
report({'A': A, 'B': B, 'C': C, 'E': E}, 'after E joins')
for n, c in {'A': A, 'B': B, 'C': C, 'E': E}.items(): print(n, table(c), open_conf(c))
