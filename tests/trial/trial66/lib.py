import apsw, json, os, shutil, glob

EXT = os.environ.get('LIB', os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../../dist/sync0'))
WORK = '/tmp/trial66'

SCHEMA_V1 = [
    "CREATE TABLE IF NOT EXISTS items(id TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),"
    " tag TEXT NOT NULL UNIQUE, name TEXT)",
    "CREATE TABLE IF NOT EXISTS borrowers(id TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),"
    " name TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS loans(id TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),"
    " item_id TEXT NOT NULL REFERENCES items(id) ON DELETE CASCADE,"
    " borrower_id TEXT NOT NULL REFERENCES borrowers(id), out_date TEXT, returned INTEGER DEFAULT 0)",
]
TABLES = ['items', 'borrowers', 'loans']


def fresh(dirname):
    d = os.path.join(WORK, dirname)
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    return d


class Dev:
    def __init__(self, name, path, setup=True, tables=TABLES, schema=SCHEMA_V1):
        self.name, self.path = name, path
        self.open()
        if setup:
            self.q1("SELECT sync_init()")
            for s in schema:
                self.x(s)
            for t in tables:
                self.q1("SELECT sync_enable(?)", (t,))
        self.id = self.q1("SELECT sync_device_id()")

    def open(self):
        self.c = apsw.Connection(self.path)
        self.c.enable_load_extension(True)
        self.c.load_extension(EXT)
        self.c.execute("PRAGMA foreign_keys=ON")
        self.c.execute("PRAGMA busy_timeout=5000")

    def close(self):
        self.c.close()

    def x(self, sql, args=()):
        return self.c.execute(sql, args).fetchall()

    def q1(self, sql, args=()):
        r = self.c.execute(sql, args).fetchall()
        return r[0][0] if r else None

    def j(self, sql, args=()):
        return json.loads(self.q1(sql, args))

    # sync calls -------------------------------------------------------
    def out(self, path, peer=None):
        return self.j("SELECT sync_bundle_out(?, ?)", (peer, path))

    def bin(self, path):
        r = self.j("SELECT sync_bundle_in(?)", (path,))
        return r

    def fin(self, folder):
        return self.j("SELECT sync_folder_in(?)", (folder,))

    def fout(self, folder):
        return self.j("SELECT sync_folder_out(?)", (folder,))

    def status(self):
        return self.j("SELECT sync_status()")

    # app-level report ------------------------------------------------
    def report(self, r):
        st = self.status()
        cols = [w for w in r.get('waiting_for_schema', []) if '.' in w]
        tabs = [w for w in r.get('waiting_for_schema', []) if '.' not in w]
        return dict(
            came_in=r.get('applied_count'), new_conflicts=r.get('conflict_count'),
            open_conflicts=st['open_conflicts'], held_out=r.get('held_out_count'),
            held_out_status=st['held_out_rows'], lost=r.get('lost_count'),
            lost_total=st['lost_writes'], pending=r.get('pending_count'),
            lacks_columns=cols, lacks_tables=tabs,
            discarded=r.get('discarded_count'), dup=r.get('duplicate_count'))

    # snapshots --------------------------------------------------------
    def tables(self, tables=TABLES):
        out = {}
        for t in tables:
            try:
                cols = [r[1] for r in self.x(f"PRAGMA table_info({t})")]
                out[t] = (cols, sorted(self.x(f"SELECT * FROM {t}"), key=repr))
            except apsw.SQLError:
                out[t] = None
        return out

    def open_conflicts(self):
        rows = self.x(
            "SELECT id, kind, table_name, pk, columns, local_op_id, remote_op_id, winner_op_id,"
            " reason, local_values, remote_values FROM sync_conflicts WHERE NOT resolved")
        out = []
        for (i, k, t, pk, cols, lo, ro, w, reason, lv, rv) in rows:
            if k == 'concurrent':   # local/remote depend on who wrote; compare as a set
                sides = tuple(sorted([(lo, lv), (ro, rv)], key=repr))
            else:
                if os.environ.get('NORM') and lv and lv.startswith('{'):   # ignore "col":null vs absent (known)
                    lv = json.dumps({k: v for k, v in json.loads(lv).items() if v is not None}, sort_keys=True)
                sides = ((lo, lv), (ro, rv))
            out.append((i, k, t, pk, cols, w, reason, sides))
        return sorted(out, key=repr)

    def conflicts_all(self):
        return self.x("SELECT id, kind, table_name, pk, columns, local_values, remote_values,"
                      " resolved, local_op_id, winner_op_id FROM sync_conflicts")

    def lost(self):
        return self.x("SELECT id, device, seq, table_name, pk, kind, cell_values, certain, reason FROM sync_lost")


def converge(devs, folder=None, rounds=3, bdir=None, verbose=False):
    """every device syncs with every other a few rounds. folder: via folder; else direct bundles."""
    for rnd in range(rounds):
        if folder:
            for d in devs:
                r = d.fin(folder)
                if verbose:
                    print(' ', d.name, 'in', d.report(r))
                d.fout(folder)
        else:
            for a in devs:
                for b in devs:
                    if a is b:
                        continue
                    p = os.path.join(bdir, f"{a.name}_to_{b.name}.bundle")
                    if os.path.exists(p):
                        os.remove(p)
                    a.out(p, b.id)
                    r = b.bin(p)
                    if verbose:
                        print(' ', a.name, '->', b.name, b.report(r))


def compare(devs, tables=TABLES, label=''):
    ok = True
    t0 = devs[0].tables(tables)
    c0 = devs[0].open_conflicts()
    for d in devs[1:]:
        t = d.tables(tables)
        if t != t0:
            ok = False
            print(f'[{label}] TABLES DIFFER {devs[0].name} vs {d.name}')
            for k in tables:
                if t.get(k) != t0.get(k):
                    print('   ', k, devs[0].name, t0.get(k))
                    print('   ', k, d.name, t.get(k))
        c = d.open_conflicts()
        if c != c0:
            ok = False
            print(f'[{label}] OPEN CONFLICTS DIFFER {devs[0].name} vs {d.name}')
            print('   ', devs[0].name, c0)
            print('   ', d.name, c)
    for d in devs:
        st = d.status()
        if st['pending']['ops']:
            ok = False
            print(f'[{label}] PENDING on {d.name}:', st['pending'])
        if st['waiting_for_schema']:
            print(f'[{label}] waiting_for_schema on {d.name}:', st['waiting_for_schema'])
    print(f'[{label}] converged:', ok, '| open conflicts:', len(c0),
          '| lost per device:', [(d.name, d.status()['lost_writes']) for d in devs])
    return ok
