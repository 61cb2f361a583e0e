# compact_every=1; backup of A put back, written on; D set up from A's full bundle; A and D sync
# first; then the whole fleet; then the same backup put back again and written on.
import apsw, os, shutil, sys
LIB = os.environ.get('EXT', 'dist/sync0'); W = os.environ.get('WORK', '/tmp/t24') + '/m1b_'; os.makedirs(os.path.dirname(W), exist_ok=True)
def conn(p):
    c = apsw.Connection(p); c.enableloadextension(True); c.loadextension(LIB); return c
def dev(n):
    p = W + n + '.db'; os.path.exists(p) and os.remove(p)
    c = conn(p)
    c.execute("SELECT sync_init(); CREATE TABLE t(k TEXT PRIMARY KEY, v TEXT); SELECT sync_enable('t');"
              "INSERT OR REPLACE INTO _sync_state(name,value) VALUES('compact_every',1)").fetchall()
    return c
def one(c, s, a=()): return c.execute(s, a).fetchall()[0][0]
def w(c, k, v): c.execute("INSERT INTO t VALUES(?,?) ON CONFLICT(k) DO UPDATE SET v=excluded.v", (k, v))
def sync(cs, rounds):
    for _ in range(rounds):
        for a in cs:
            for b in cs:
                if a is b: continue
                try: one(b, "SELECT sync_bundle_in(?)", (one(a, "SELECT sync_bundle_out(?)", (one(b, "SELECT sync_device_id()"),)),))
                except apsw.Error as e: print('import refused:', e)
def put_back(c):
    c.close()
    with open(W+'a.bak', 'rb') as f, open(W+'a.db', 'r+b') as g: g.write(f.read()); g.truncate()
    return conn(W+'a.db')
A, B, C = dev('a'), dev('b'), dev('c')
w(A, 'A0', 'a0'); w(B, 'B0', 'b0'); w(C, 'C0', 'c0')
sync([A, B, C], 2)
shutil.copyfile(W+'a.db', W+'a.bak')                    # backup of A (no connection writes)
w(A, 'A1', 'a1'); w(A, 'x', 'a-x1')
sync([A, B, C], 2)
w(B, 'x', 'b-x2'); w(C, 'C1', 'c1')
sync([A, B, C], 2)
A = put_back(A)                                         # put back #1, written on before syncing
w(A, 'A2', 'a2r'); w(A, 'x', 'a-x3r')
D = dev('d'); one(D, "SELECT sync_bundle_in(?)", (one(A, "SELECT sync_bundle_out(NULL)"),))
w(D, 'D1', 'd1')
sync([A, D], 3)
w(A, 'A3', 'a3r'); w(D, 'D2', 'd2')
sync([A, D], 2)
sync([A, B, C, D], 4)
A = put_back(A)                                         # put back #2, same backup
w(A, 'A4', 'a4rr'); w(A, 'x', 'a-x5rr')
sync([A, B, C, D], 4)
for n, c in zip('ABCD', (A, B, C, D)):
    print(n, c.execute("SELECT * FROM t ORDER BY k").fetchall(),
          'lost:', c.execute("SELECT json_extract(cell_values,'$.v') FROM sync_lost").fetchall())
