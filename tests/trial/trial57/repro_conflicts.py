# Minimal reproduction #2: the three devices end with identical tables and clocks but different OPEN
# conflicts, for good. B's backup is put back and written on before syncing; compaction after syncs.
import apsw, os, shutil, json
D = os.environ.get('DIR', '/tmp/trial57_' + os.path.basename(__file__)[:-3]); shutil.rmtree(D, ignore_errors=True); os.makedirs(D)
EXT = os.environ.get('LIB', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'dist', 'sync0'))
def db(k):
    c = apsw.Connection(f'{D}/{k}.db'); c.enable_load_extension(True); c.load_extension(EXT); return c
def one(k, sql, *a):
    c = db(k); r = c.execute(sql, a).fetchall(); c.close(); return r[0][0] if r else None
def send(src, dst):
    p = f'{D}/x.bundle'
    if os.path.exists(p): os.remove(p)
    one(src, "SELECT sync_bundle_out(?, ?)", one(dst, "SELECT sync_device_id()"), p)
    r = json.loads(one(dst, "SELECT sync_bundle_in(?)", p))
    if r['lost_count'] or r['conflict_count']: print(f'  {src}->{dst}: lost {r["lost_count"]} conflicts {r["conflict_count"]}')
def x(k, sql): one(k, sql)
for k in 'abc':
    c = db(k); c.execute("SELECT sync_init()").fetchall()
    c.execute("CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)"); c.execute("SELECT sync_enable('t')").fetchall(); c.close()
x('a', "INSERT INTO t VALUES ('r1','a1')"); x('b', "INSERT INTO t VALUES ('r7','b7')"); x('a', "INSERT INTO t VALUES ('r10','a10')")
send('b', 'c'); send('c', 'a'); send('a', 'b')
c = db('b'); c.execute(f"VACUUM INTO '{D}/b_backup.db'"); c.close()          # backup of B
one('b', "SELECT sync_compact()")
x('b', "INSERT INTO t VALUES ('r22','b22')"); x('b', "UPDATE t SET v='b24' WHERE id='r10'")   # B, after the backup
x('c', "INSERT INTO t VALUES ('r25','c25')")
send('b', 'a'); send('c', 'a'); send('a', 'c'); send('a', 'b'); one('b', "SELECT sync_compact()")
send('b', 'a'); send('c', 'a'); one('a', "SELECT sync_compact()"); send('b', 'c'); send('a', 'c')
with open(f'{D}/b_backup.db', 'rb') as f, open(f'{D}/b.db', 'r+b') as g:   # put B's backup back (same inode)
    g.write(f.read()); g.truncate()
x('b', "INSERT INTO t VALUES ('r39','b39')"); x('b', "UPDATE t SET v='b40' WHERE id='r1'")    # written before syncing
one('c', "SELECT sync_compact()")
x('b', "UPDATE t SET v='b44' WHERE id='r7'"); x('b', "INSERT INTO t VALUES ('r45','b45')")
send('c', 'b')                                                                 # B's first sync after the restore
print('B now shows r10 =', one('b', "SELECT v FROM t WHERE id='r10'"), '| former_ids', one('b', "SELECT sync_status()->'$.former_ids'"))
x('b', "UPDATE t SET v='b51' WHERE id='r10'")                                   # B edits r10 having seen b24
for i in range(3):
    for s in 'abc':
        for d in 'abc':
            if s != d: send(s, d)
for k in 'abc':
    c = db(k)
    print(k, 'r10 =', c.execute("SELECT v FROM t WHERE id='r10'").fetchall()[0][0],
          '| tables same:', c.execute("SELECT group_concat(id||'='||v) FROM (SELECT * FROM t ORDER BY 1)").fetchall()[0][0],
          '\n   open conflicts:', c.execute("SELECT pk, local_values, remote_values FROM sync_conflicts WHERE NOT resolved").fetchall(),
          '\n   clock:', c.execute("SELECT sync_clock()").fetchall()[0][0])
    c.close()
