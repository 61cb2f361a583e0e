import apsw, json, os, shutil  # shrunk from gen.py seed 240 (every); EXT=/path/to/sync0
EXT, D, AUTO, EVERY = os.environ['EXT'], os.path.join(os.environ.get('WORK', '/tmp/t26'), 'r240'), 0, True; ids, devs = {}, []
shutil.rmtree(D, True); os.makedirs(D)
def C(n, ext=True):
    c = apsw.Connection(f'{D}/{n}.db'); ext and (c.enable_load_extension(True), c.load_extension(EXT)); return c
def q(c, s, *a): return c.execute(s, a).fetchall()[0][0]
def X(n, c): ids[n] = q(c, 'SELECT sync_device_id()'); c.close()
def new(n):
    c = C(n); q(c, 'SELECT sync_init()'); c.execute('CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)'); q(c, "SELECT sync_enable('t')")
    if AUTO: c.execute("INSERT OR REPLACE INTO _sync_state(name, value) VALUES ('compact_every', ?)", (AUTO,))
    X(n, c); devs.append(n)
def W(n, sql, ext=True):  # write with (or without) the extension loaded
    c = C(n, ext); c.execute(sql); X(n, c) if ext else c.close()
def send(a, b, peer=True):  # a's bundle for b, imported by b (then sync_compact() in EVERY mode)
    if b not in ids: X(b, C(b))
    c = C(a); blob = q(c, 'SELECT sync_bundle_out(?)', ids[b] if peer else None); X(a, c); c = C(b)
    try: q(c, 'SELECT sync_bundle_in(?)', blob)
    except apsw.Error as e: print('IMPORT ERROR', a, '->', b, e)
    if EVERY: q(c, 'SELECT sync_compact()')
    X(b, c)
def forget_former():  # README recovery: forget former ids no current device has
    for n in devs:
        c = C(n); [q(c, 'SELECT sync_forget(?)', f) for f in json.loads(q(c, 'SELECT sync_status()'))['former_ids'] if f not in ids.values()]; X(n, c)
def rounds(k): [send(a, b) for _ in range(k) for a in devs for b in devs if a != b]
cp = lambda a, b: shutil.copyfile(f'{D}/{a}', f'{D}/{b}')
new('d0')
new('d2')
new('d3')
cp('d2.db', 'bk0.bak')  # backup
W('d2', "INSERT INTO t VALUES('k1','d2@9.860') ON CONFLICT(id) DO UPDATE SET v=excluded.v; INSERT INTO t VALUES('k4','d2@9.474') ON CONFLICT(id) DO UPDATE SET v=excluded.v")
[(send('d2', p), send(p, 'd2')) for p in devs if p != 'd2']  # hub
W('d0', "INSERT INTO t VALUES('k5','d0@29.558') ON CONFLICT(id) DO UPDATE SET v=excluded.v")
[(send('d3', p), send(p, 'd3')) for p in devs if p != 'd3']  # hub
cp('bk0.bak', 'd2.db')  # put back over the same file
W('d2', "INSERT INTO t VALUES('k0','d2@39R.607') ON CONFLICT(id) DO UPDATE SET v=excluded.v")  # written on before it syncs
rounds(2); forget_former(); rounds(4)
for n in devs:
    c = C(n); print(n, 'pending', json.loads(q(c, 'SELECT sync_status()'))['pending']['ops'], 'rows', c.execute('SELECT * FROM t ORDER BY id').fetchall(),
          'open', c.execute('SELECT kind, pk FROM sync_conflicts WHERE NOT resolved ORDER BY 2').fetchall(), 'lost', c.execute('SELECT pk, kind, cell_values FROM sync_lost').fetchall()); c.close()
