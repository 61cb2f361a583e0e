# Shrunk (greedy step removal, 218 -> 16 steps) from random schedule direct2 seed 13 (helper 58).
# Three devices; b and c are both put back to backups (same inode), c inserts one row before it
# syncs and sends it to b. From then on b refuses every bundle from a and c:
#   sync_bundle_in: ... op N (seq 3 of device <c's old id>): op 2 of device <c's old id> is missing (hashing it)
# b keeps the row, which a and c list in sync_lost; b has 1 op pending for good; clocks differ.
# Run: /tmp/venv/bin/python3 tests/trial/trial58/refused.py
import apsw, json, os, shutil

D = os.environ.get('DIR', '/tmp/trial58_refused')
EXT = os.environ.get('LIB', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'dist', 'sync0'))


def db(k):
    c = apsw.Connection(f'{D}/{k}.db'); c.enable_load_extension(True); c.load_extension(EXT); return c


def one(k, sql, *a):
    c = db(k); r = c.execute(sql, a).fetchall(); c.close(); return r[0][0] if r else None


def send(src, dst, show=True):
    p = f'{D}/x.bundle'
    if os.path.exists(p): os.remove(p)
    one(src, "SELECT sync_bundle_out(?, ?)", one(dst, "SELECT sync_device_id()"), p)
    try:
        r = json.loads(one(dst, "SELECT sync_bundle_in(?)", p))
    except apsw.Error as e:
        if show: print(f'  {src}->{dst}: REFUSED {e}')
        return
    if show:
        print(f'  {src}->{dst}: applied {r["applied_count"]} conflicts {r["conflict_count"]} lost {r["lost_count"]} '
              f'discarded {r["discarded_count"]} pending {r["pending_count"]}')


def back_up(k):
    c = db(k); c.execute(f"VACUUM INTO '{D}/{k}_backup.db'"); c.close()


def put_back(k):
    with open(f'{D}/{k}_backup.db', 'rb') as f, open(f'{D}/{k}.db', 'r+b') as g:   # same inode
        g.write(f.read()); g.truncate()


shutil.rmtree(D, ignore_errors=True); os.makedirs(D)
for k in 'abc':
    c = db(k); c.execute("SELECT sync_init()").fetchall()
    c.execute("CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)"); c.execute("SELECT sync_enable('t')").fetchall(); c.close()

one('b', "INSERT INTO t VALUES ('RW00010', 'W00010')")
back_up('c')
send('b', 'c')
one('c', "UPDATE t SET v='W00018' WHERE id='RW00010'")
send('c', 'b')
print('c compacts:', one('c', "SELECT sync_compact()"))
back_up('b')
send('b', 'c')
print('c compacts:', one('c', "SELECT sync_compact()"))
send('c', 'b'); send('b', 'a')
print('a compacts:', one('a', "SELECT sync_compact()"))
put_back('b')
put_back('c')
one('c', "INSERT INTO t VALUES ('RW00048', 'W00048')")                      # written before c syncs
send('c', 'b')
print('--- all-pairs exchanges, 6 passes, no compaction (first and last pass shown)')
for i in range(6):
    for s in 'abc':
        for d in 'abc':
            if s != d: send(s, d, show=(i in (0, 5)))
for k in 'abc':
    c = db(k)
    print(k, 'rows', c.execute("SELECT * FROM t ORDER BY 1").fetchall(),
          '\n   clock', c.execute("SELECT sync_clock()").fetchall()[0][0],
          '\n   open conflicts', c.execute("SELECT pk, local_values, remote_values FROM sync_conflicts WHERE NOT resolved").fetchall(),
          '\n   pending', c.execute("SELECT sync_status() -> '$.pending.ops'").fetchall()[0][0],
          'former_ids', c.execute("SELECT sync_status() -> '$.former_ids'").fetchall()[0][0],
          '\n   lost', c.execute("SELECT device, seq, pk, kind, cell_values, certain FROM sync_lost").fetchall())
    c.close()
