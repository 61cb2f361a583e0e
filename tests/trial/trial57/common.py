# What the trial's scripts share: three devices a, b, c as files under DIR (a fresh directory;
# default under /tmp), the library at LIB (default dist/sync0), bundles sent by file.
# FORK=1: the put-back device runs sync_fork() right after its backup is put back.
import apsw, json, os, shutil, sys

D = os.environ.get('DIR', '/tmp/trial57_' + os.path.basename(sys.argv[0])[:-3])
EXT = os.environ.get('LIB', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'dist', 'sync0'))
FORK = os.environ.get('FORK') == '1'


def db(k):
    c = apsw.Connection(f'{D}/{k}.db'); c.enable_load_extension(True); c.load_extension(EXT); return c


def one(k, sql, *a):
    c = db(k); r = c.execute(sql, a).fetchall(); c.close(); return r[0][0] if r else None


def send(src, dst):
    """src writes a bundle for dst's current id, dst imports it; the import's result."""
    p = f'{D}/x.bundle'
    if os.path.exists(p): os.remove(p)
    one(src, "SELECT sync_bundle_out(?, ?)", one(dst, "SELECT sync_device_id()"), p)
    return json.loads(one(dst, "SELECT sync_bundle_in(?)", p))


def devices():
    """A fresh DIR with a, b, c, each syncing t(id, v)."""
    shutil.rmtree(D, ignore_errors=True); os.makedirs(D)
    for k in 'abc':
        c = db(k); c.execute("SELECT sync_init()").fetchall()
        c.execute("CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)"); c.execute("SELECT sync_enable('t')").fetchall(); c.close()


def back_up(k):
    c = db(k); c.execute(f"VACUUM INTO '{D}/{k}_backup.db'"); c.close()


def put_back(k):
    """k's backup over its file (the same inode), then sync_fork() where FORK=1."""
    with open(f'{D}/{k}_backup.db', 'rb') as f, open(f'{D}/{k}.db', 'r+b') as g:
        g.write(f.read()); g.truncate()
    if FORK:
        print(f'{k} forks right after the put-back:', one(k, 'SELECT sync_fork()'))
