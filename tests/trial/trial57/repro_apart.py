# Shrunk from a random schedule: 3 devices; a's backup is put back after a wrote only
# compaction points since the backup; a writes one row before syncing. a and b keep the row, c
# lists it in sync_lost ("dropped on every device"); clocks alike, nothing pending: apart for
# good. With FORK=1 (sync_fork() right after the put-back) all three keep it.
from common import *


def report(r):
    return f'applied {r["applied_count"]} lost {r["lost_count"]} discarded {r["discarded_count"]} pending {r["pending_count"]}'


def sent(src, dst):
    print(f'  {src}->{dst}:', report(send(src, dst)))


devices()
one('c', "INSERT INTO t VALUES ('c1','c1')")
sent('c', 'b'); sent('b', 'a')
back_up('a')
print('A compacts:', one('a', "SELECT sync_compact()"))                       # A's only op after the backup
one('c', "INSERT INTO t VALUES ('c2','c2')")
sent('c', 'b'); sent('a', 'c'); sent('b', 'c'); sent('c', 'a')
print('A compacts:', one('a', "SELECT sync_compact()"))
sent('a', 'b'); sent('b', 'c')
put_back('a')
print('C compacts:', one('c', "SELECT sync_compact()"))
one('a', "INSERT INTO t VALUES ('a-after-restore','x')")                     # written before A syncs
sent('c', 'a')
print('--- then every device sends to every other, 3 times, compacting in between')
for i in range(3):
    for s in 'abc':
        for d in 'abc':
            if s != d: sent(s, d)
    for k in 'abc': one(k, "SELECT sync_compact()")
for s in 'abc':
    for d in 'abc':
        if s != d: sent(s, d)
for k in 'abc':
    c = db(k)
    print(k, 'rows', c.execute("SELECT * FROM t ORDER BY 1").fetchall(),
          '\n   clock', c.execute("SELECT sync_clock()").fetchall()[0][0],
          '\n   lost', c.execute("SELECT device, seq, pk, cell_values, certain FROM sync_lost").fetchall(),
          '\n   pending', c.execute("SELECT sync_status() -> '$.pending.ops'").fetchall()[0][0],
          'former_ids', c.execute("SELECT sync_status() -> '$.former_ids'").fetchall()[0][0])
    c.close()
