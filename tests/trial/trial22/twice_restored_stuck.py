# Default-ish settings (compact_every = 2000, as README suggests "keep it in thousands"):
# b's backup put back and written before syncing, new device c from b's full bundle, b's backup put back again
# -> b stays apart for good, with ops "pending" that its peers hold but never deliver.
import sys, shutil; import os; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__))); import h; from h import *
h.COMPACT = False; h.AUTO = int(sys.argv[1]) if len(sys.argv)>1 else 2000
V = sys.argv[2] if len(sys.argv)>2 else ''
d=os.environ.get('WORK', '/tmp/t22')+f'/stuck_{h.AUTO}{V}'; wipe(d)
a=dev(d+'/a.db'); b=dev(d+'/b.db')
a.execute("INSERT INTO t SELECT 'f'||value, 'x', 'x' FROM generate_series(1,2000)") if 0 else \
a.execute("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i<2000) INSERT INTO t SELECT 'f'||i,'x','x' FROM s")
for i in range(1,5): a.execute("INSERT INTO t VALUES(?, 'v0', 'w0')", (f'r{i}',))
xferp(a,b,'0ab',d)
b.close(); shutil.copy(d+'/b.db', d+'/b.bak'); b=dev(d+'/b.db',False)     # 1. backup of b
b.execute("UPDATE t SET v='b3' WHERE id='r1'")
xfer(b,a,'1ba',d)                                                           # a gets b3 (a auto-compacts here)
b.close(); shutil.copy(d+'/b.bak', d+'/b.db')                               # 2. put the backup back...
r=raw(d+'/b.db') if 'ext' not in V else dev(d+'/b.db',False)
if 'nodel' not in V: r.execute("DELETE FROM t WHERE id='r1'")
if 'now' not in V: r.execute("UPDATE t SET w='b6' WHERE id='r3'")
r.close()  # ...written before syncing
b=dev(d+'/b.db',False)
if 'noc' not in V:
    c=dev(d+'/c.db'); xfer(b,c,'2bc_full',d)                                    # 3. new device from b's full bundle
    xferp(c,a,'3ca',d)
else:
    xferp(b,a,'3ba',d); c=dev(d+'/c.db')
if 'no2' not in V: b.close(); shutil.copy(d+'/b.bak', d+'/b.db'); b=dev(d+'/b.db',False)       # 4. backup put back a second time
D={'a':a,'b':b,'c':c}
for rnd in range(3):
    for x in 'abc':
        for y in 'abc':
            if x!=y: xferp(D[x],D[y],f'f{rnd}{x}{y}',d)
print('b pending:', json.loads(one(b,"SELECT sync_status()"))['pending'])
h.rows = lambda c: q(c, "SELECT id, v, w FROM t WHERE id LIKE 'r%' ORDER BY id")
check(D, [('b3','r1','v','b3'),('b del r1','r1','v',None),('b6','r3','w','b6')])
