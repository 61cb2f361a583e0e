# Shrunk (greedy step removal, 204 -> 15 steps) from random schedule direct2 seed 20 (helper 58).
# Three devices; c's backup is taken before c writes anything; c writes two rows and sends them on;
# the backup is put back over c.db (same inode) and c inserts two rows before it syncs; a and b
# compact once. After all-pairs exchanges with no compaction after them: a and c show row RW00026,
# b does not and lists it in sync_lost (certain 1, "the write is dropped on every device");
# b's sync_clock() differs from a's and c's; nothing pending, no import error.
# Run: /tmp/venv/bin/python3 tests/trial/trial58/rows_apart.py
import apsw, json, os, shutil

D = os.environ.get('DIR', '/tmp/trial58_rows_apart')
EXT = os.environ.get('LIB', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'dist', 'sync0'))


def db(k):
    c = apsw.Connection(f'{D}/{k}.db'); c.enable_load_extension(True); c.load_extension(EXT); return c


def one(k, sql, *a):
    c = db(k); r = c.execute(sql, a).fetchall(); c.close(); return r[0][0] if r else None


def send(src, dst, show=True):
    p = f'{D}/x.bundle'
    if os.path.exists(p): os.remove(p)
    one(src, "SELECT sync_bundle_out(?, ?)", one(dst, "SELECT sync_device_id()"), p)
    r = json.loads(one(dst, "SELECT sync_bundle_in(?)", p))
    if show:
        print(f'  {src}->{dst}: applied {r["applied_count"]} conflicts {r["conflict_count"]} lost {r["lost_count"]} '
              f'discarded {r["discarded_count"]} pending {r["pending_count"]}')


shutil.rmtree(D, ignore_errors=True); os.makedirs(D)
for k in 'abc':
    c = db(k); c.execute("SELECT sync_init()").fetchall()
    c.execute("CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)"); c.execute("SELECT sync_enable('t')").fetchall(); c.close()

c = db('c'); c.execute(f"VACUUM INTO '{D}/c_backup.db'"); c.close()          # backup of c
one('c', "INSERT INTO t VALUES ('RW00017', 'W00017')")
send('c', 'a'); send('a', 'b')
one('c', "INSERT INTO t VALUES ('RW00020', 'W00020')")
send('c', 'a')
with open(f'{D}/c_backup.db', 'rb') as f, open(f'{D}/c.db', 'r+b') as g:     # put c's backup back (same inode)
    g.write(f.read()); g.truncate()
one('c', "INSERT INTO t VALUES ('RW00025', 'W00025')")                      # written before c syncs
one('c', "INSERT INTO t VALUES ('RW00026', 'W00026')")
send('b', 'a'); send('c', 'b'); send('a', 'b')
print('a compacts:', one('a', "SELECT sync_compact()"))
print('b compacts:', one('b', "SELECT sync_compact()"))
send('c', 'a')
print('--- all-pairs exchanges, 6 passes, no compaction (first pass shown)')
for i in range(6):
    for s in 'abc':
        for d in 'abc':
            if s != d: send(s, d, show=(i == 0))
for k in 'abc':
    c = db(k)
    print(k, 'rows', c.execute("SELECT * FROM t ORDER BY 1").fetchall(),
          '\n   clock', c.execute("SELECT sync_clock()").fetchall()[0][0],
          '\n   open conflicts', c.execute("SELECT pk, local_values, remote_values FROM sync_conflicts WHERE NOT resolved").fetchall(),
          '\n   pending', c.execute("SELECT sync_status() -> '$.pending.ops'").fetchall()[0][0],
          'former_ids', c.execute("SELECT sync_status() -> '$.former_ids'").fetchall()[0][0],
          '\n   lost', c.execute("SELECT device, seq, pk, kind, cell_values, certain FROM sync_lost").fetchall())
    c.close()
