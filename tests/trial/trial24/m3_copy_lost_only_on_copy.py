# cp copy of A written by the plain sqlite3 shell (no extension), then opened with it;
# sync_compact() after every import. Where do the copy's writes end up?
import apsw, os, shutil, subprocess
LIB = os.environ.get('EXT', 'dist/sync0'); W = os.environ.get('WORK', '/tmp/t24') + '/m3_'; os.makedirs(os.path.dirname(W), exist_ok=True)
def conn(p):
    c = apsw.Connection(p); c.enableloadextension(True); c.loadextension(LIB); return c
def dev(n):
    p = W + n + '.db'; os.path.exists(p) and os.remove(p); c = conn(p)
    c.execute("SELECT sync_init(); CREATE TABLE t(k TEXT PRIMARY KEY, v TEXT); SELECT sync_enable('t')").fetchall()
    return c
def one(c, s, a=()): return c.execute(s, a).fetchall()[0][0]
def sync(cs, rounds):
    for _ in range(rounds):
        for a in cs:
            for b in cs:
                if a is b: continue
                one(b, "SELECT sync_bundle_in(?)", (one(a, "SELECT sync_bundle_out(?)", (one(b, "SELECT sync_device_id()"),)),))
                one(b, "SELECT sync_compact()")
A, B, C = dev('a'), dev('b'), dev('c')
A.execute("INSERT INTO t VALUES('A0','a0'),('x','a-x0')"); B.execute("INSERT INTO t VALUES('B0','b0')")
sync([A, B, C], 2)
shutil.copyfile(W+'a.db', W+'k.db')
subprocess.run(['sqlite3', W+'k.db', "INSERT INTO t VALUES('K1','copy-1'); UPDATE t SET v='copy-x' WHERE k='x'"], check=True)
A.execute("INSERT INTO t VALUES('A1','a1')"); A.execute("UPDATE t SET v='a-x1' WHERE k='x'")
sync([A, B, C], 3)
K = conn(W+'k.db')
sync([A, B, C, K], 4)
for n, c in zip('ABCK', (A, B, C, K)):
    print(n, c.execute("SELECT * FROM t ORDER BY k").fetchall(),
          '| sync_lost:', c.execute("SELECT seq, cell_values, certain FROM sync_lost").fetchall(),
          '| conflicts:', c.execute("SELECT count(*) FROM sync_conflicts").fetchall()[0][0])
