# compact_every: automatic compaction in sync_bundle_in (README "Automatic compaction")
from synclib import *
A = fresh('t1_A.db'); B = fresh('t1_B.db')
q(A, "INSERT INTO t VALUES('r1','v0',NULL)")
send(A, B, full=True); send(B, A)
def imp(dst, src, txn=False):
    blob = q1(src, "SELECT sync_bundle_out(?)", did(dst))
    if txn:
        with dst:
            r = j(dst, "SELECT sync_bundle_in(?)", blob)
    else:
        r = j(dst, "SELECT sync_bundle_in(?)", blob)
    return r
for every in ('5', "'abc'", '0', '2.5', "'5'"):
    q(B, f"INSERT OR REPLACE INTO _sync_state(name, value) VALUES ('compact_every', {every})")
    res = []
    for i in range(7):
        q(A, "UPDATE t SET v=? WHERE id='r1'", f"{every}-{i}")
        r = imp(B, A); send(B, A)
        res.append(r.get('compacted'))
    print(f"compact_every={every}: compacted per import:", res)
q(B, "INSERT OR REPLACE INTO _sync_state(name, value) VALUES ('compact_every', 1)")
q(A, "UPDATE t SET v='txn' WHERE id='r1'")
print("inside apsw 'with conn:' (a transaction):", imp(B, A, txn=True).get('compacted'))
q(A, "UPDATE t SET v='notxn' WHERE id='r1'")
print("outside:", imp(B, A).get('compacted'))
print('keys of sync_bundle_in result:', sorted(imp(B, A).keys()))
# sync_compact inside transactions
q(A, "UPDATE t SET v='x' WHERE id='r1'"); send(A, B); send(B, A)
try:
    q(B, "BEGIN IMMEDIATE"); print(q1(B, "SELECT sync_compact()"))
except Exception as e: print('BEGIN IMMEDIATE: refused:', str(e)[:150])
q(B, "ROLLBACK")
q(B, "BEGIN"); print('in BEGIN (not written):', q1(B, "SELECT sync_compact()")); q(B, "ROLLBACK")
print('after ROLLBACK, again:', q1(B, "SELECT sync_compact()"))
