# what the shrunk scripts share (emit.py's standalone preamble, kept once): devices are files
# under $WORK/<name>, each opened, used and closed per action, with the library $EXT
import apsw, json, os, shutil
EXT, D, AUTO, EVERY = os.environ['EXT'], None, 0, False; ids, devs = {}, []
def setup(name, auto, every):  # auto: compact_every; every: sync_compact() after each import
    global D, AUTO, EVERY
    D, AUTO, EVERY = os.path.join(os.environ.get('WORK', '/tmp/t26'), name), auto, every
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
def cp(a, b): shutil.copyfile(f'{D}/{a}', f'{D}/{b}')
def show():
    for n in devs:
        c = C(n); print(n, 'pending', json.loads(q(c, 'SELECT sync_status()'))['pending']['ops'], 'rows', c.execute('SELECT * FROM t ORDER BY id').fetchall(),
              'open', c.execute('SELECT kind, pk FROM sync_conflicts WHERE NOT resolved ORDER BY 2').fetchall(), 'lost', c.execute('SELECT pk, kind, cell_values FROM sync_lost').fetchall()); c.close()
