import apsw, json, os, glob, shutil
LIB = os.environ.get('EXT', 'dist/sync0')
SCHEMA = "CREATE TABLE IF NOT EXISTS t(id TEXT PRIMARY KEY, v TEXT, w TEXT)"

def q(c, sql, *a):
    return c.execute(sql, a).fetchall()
def q1(c, sql, *a):
    r = c.execute(sql, a).fetchall()
    return r[0][0] if r else None
def j(c, sql, *a):
    v = q1(c, sql, *a)
    return json.loads(v) if isinstance(v, str) else v

def open_dev(path, init=True, schema=SCHEMA, load=True):
    c = apsw.Connection(path)
    c.enable_load_extension(True)
    if load:
        c.load_extension(LIB)
    if init:
        q1(c, "SELECT sync_init()")
        c.execute(schema)
        q1(c, "SELECT sync_enable('t')")
    return c

def fresh(path):
    for f in glob.glob(path + '*'):
        os.remove(f)
    return open_dev(path)

def did(c):
    return q1(c, "SELECT sync_device_id()")

def send(src, dst, full=False, name=''):
    """bundle from src addressed to dst, imported at dst"""
    peer = None if full else did(dst)
    blob = q1(src, "SELECT sync_bundle_out(?)", peer)
    r = j(dst, "SELECT sync_bundle_in(?)", blob)
    return r

def compact(c):
    return j(c, "SELECT sync_compact()")

def floors(c):
    return q1(c, "SELECT count(*) FROM sync_log WHERE \"table\"='_sync_floor'")
def rowops(c):
    return q1(c, "SELECT count(*) FROM sync_log WHERE \"table\"<>'_sync_floor'")
def floors_by_dev(c, names):
    out = {}
    for d, n in q(c, "SELECT device, count(*) FROM sync_log WHERE \"table\"='_sync_floor' GROUP BY device"):
        out[names.get(d, d[:6])] = n
    return out

def table(c, t='t'):
    return q(c, f"SELECT * FROM {t} ORDER BY 1")
def status(c):
    return j(c, "SELECT sync_status()")
def lost(c):
    return q(c, "SELECT device, seq, table_name, pk, kind, cell_values, certain, reason FROM sync_lost")
def open_conf(c):
    return q(c, "SELECT table_name, pk, columns, kind, local_values, remote_values FROM sync_conflict_records WHERE NOT resolved")

def report(devs, label=''):
    """devs: dict name->conn. prints table equality, lost, conflicts, pending"""
    names = {did(c): n for n, c in devs.items()}
    tabs = {n: table(c) for n, c in devs.items()}
    first = list(tabs.values())[0]
    same = all(v == first for v in tabs.values())
    print(f"== {label}: tables identical: {same}")
    for n, c in devs.items():
        s = status(c)
        print(f"  {n}: rows={len(tabs[n])} floors={floors(c)} rowops={rowops(c)} log_ops={s['log']['ops']} "
              f"pending={s['pending']['ops']} open_conf={s['open_conflicts']} held={s['held_out_rows']} lost={s['lost_writes']} "
              f"former={[names.get(x,x[:6]) for x in s.get('former_ids',[])]}")
    if not same:
        for n in tabs:
            print("   ", n, tabs[n])
    return same, tabs
