# Minimal reproduction (found by a randomized schedule, then minimized): 3 devices,
# A's backup is put back after A wrote only a compaction point since the backup; A writes one row
# before syncing. A keeps the row, B and C never get it, clocks are identical, nothing is pending,
# nothing is listed in sync_lost anywhere: the devices are apart for good.
import apsw, os, shutil, json
D = os.environ.get('DIR', '/tmp/trial57_' + os.path.basename(__file__)[:-3]); shutil.rmtree(D, ignore_errors=True); os.makedirs(D)
EXT = os.environ.get('LIB', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'dist', 'sync0'))
def db(k):
    c = apsw.Connection(f'{D}/{k}.db'); c.enable_load_extension(True); c.load_extension(EXT); return c
def one(k, sql, *a):
    c = db(k); r = c.execute(sql, a).fetchall(); c.close(); return r[0][0] if r else None
def send(src, dst):   # src writes a bundle for dst's current id, dst imports it
    p = f'{D}/x.bundle'
    if os.path.exists(p): os.remove(p)
    one(src, "SELECT sync_bundle_out(?, ?)", one(dst, "SELECT sync_device_id()"), p)
    r = json.loads(one(dst, "SELECT sync_bundle_in(?)", p))
    print(f'  {src}->{dst}: applied {r["applied_count"]} lost {r["lost_count"]} discarded {r["discarded_count"]} pending {r["pending_count"]}')
for k in 'abc':
    c = db(k); c.execute("SELECT sync_init()").fetchall()
    c.execute("CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)"); c.execute("SELECT sync_enable('t')").fetchall(); c.close()
one('c', "INSERT INTO t VALUES ('c1','c1')")
send('c', 'b'); send('b', 'a')
c = db('a'); c.execute(f"VACUUM INTO '{D}/a_backup.db'"); c.close()          # backup of A
print('A compacts:', one('a', "SELECT sync_compact()"))                       # A's only op after the backup
one('c', "INSERT INTO t VALUES ('c2','c2')")
send('c', 'b'); send('a', 'c'); send('b', 'c'); send('c', 'a')
print('A compacts:', one('a', "SELECT sync_compact()"))
send('a', 'b'); send('b', 'c')
with open(f'{D}/a_backup.db', 'rb') as f, open(f'{D}/a.db', 'r+b') as g:   # put the backup back (same inode)
    g.write(f.read()); g.truncate()
print('C compacts:', one('c', "SELECT sync_compact()"))
one('a', "INSERT INTO t VALUES ('a-after-restore','x')")                     # written before A syncs
send('c', 'a')
print('--- then every device sends to every other, 3 times, compacting in between')
for i in range(3):
    for s in 'abc':
        for d in 'abc':
            if s != d: send(s, d)
    for k in 'abc': one(k, "SELECT sync_compact()")
for s in 'abc':
    for d in 'abc':
        if s != d: send(s, d)
for k in 'abc':
    c = db(k)
    print(k, 'rows', c.execute("SELECT * FROM t ORDER BY 1").fetchall(),
          '\n   clock', c.execute("SELECT sync_clock()").fetchall()[0][0],
          '\n   lost', c.execute("SELECT device, seq, pk, cell_values, certain FROM sync_lost").fetchall(),
          '\n   pending', c.execute("SELECT sync_status() -> '$.pending.ops'").fetchall()[0][0],
          'former_ids', c.execute("SELECT sync_status() -> '$.former_ids'").fetchall()[0][0])
    c.close()
