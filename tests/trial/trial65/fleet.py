"""Helper for the field-inspections trial (apsw)."""
import apsw, json, os, shutil, glob

LIB = os.environ.get('LIB', os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../../dist/sync0'))

SCHEMA = """
CREATE TABLE IF NOT EXISTS sites(
  id TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
  name TEXT NOT NULL,
  region TEXT
);
CREATE TABLE IF NOT EXISTS inspections(
  id TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
  site_id TEXT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
  ref_code TEXT NOT NULL UNIQUE,
  status TEXT DEFAULT 'open',
  score INTEGER CHECK (score IS NULL OR score BETWEEN 0 AND 100),
  notes TEXT
);
CREATE TABLE IF NOT EXISTS findings(
  id TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
  inspection_id TEXT NOT NULL REFERENCES inspections(id) ON DELETE CASCADE,
  text TEXT
);
"""
TABLES = ['sites', 'inspections', 'findings']


def connect(path, load=True):
    db = apsw.Connection(path)
    db.setbusytimeout(5000)
    if load:
        db.enable_load_extension(True)
        db.load_extension(LIB)
    db.execute("PRAGMA foreign_keys = ON")
    return db


class Device:
    def __init__(self, name, path, create=True):
        self.name, self.path = name, path
        self.db = connect(path)
        if create:
            self.q("SELECT sync_init()")
            self.db.execute(SCHEMA)
            for t in TABLES:
                self.q("SELECT sync_enable(?)", (t,))

    def reopen(self):
        self.db.close()
        self.db = connect(self.path)
        self.q("SELECT sync_init()")

    def close(self):
        self.db.close()

    def q(self, sql, args=()):
        return self.db.execute(sql, args).fetchall()

    def one(self, sql, args=()):
        r = self.q(sql, args)
        return r[0][0] if r else None

    def j(self, sql, args=()):
        v = self.one(sql, args)
        return json.loads(v) if isinstance(v, str) else v

    @property
    def id(self):
        return self.one("SELECT sync_device_id()")

    def out(self, path, peer=None):
        return self.j("SELECT sync_bundle_out(?, ?)", (peer, path))

    def inn(self, path_or_blob):
        return self.j("SELECT sync_bundle_in(?)", (path_or_blob,))

    def fout(self, d):
        return self.j("SELECT sync_folder_out(?)", (d,))

    def fin(self, d):
        return self.j("SELECT sync_folder_in(?)", (d,))

    def status(self):
        return self.j("SELECT sync_status()")

    def snapshot(self):
        snap = {}
        for t in TABLES + getattr(self, 'extra_tables', []):
            try:
                cols = getattr(self, 'common_cols', {}).get(t, '*')
                snap[t] = self.q(f"SELECT {cols} FROM {t} ORDER BY 1")
            except apsw.SQLError:
                snap[t] = None
        cols = "table_name, pk, kind, columns" if os.environ.get('NOIDS') else "id, table_name, pk, kind, columns"
        snap['open'] = sorted(self.q(f"SELECT {cols} FROM sync_conflicts WHERE NOT resolved"))
        return snap


def sync_pair(a, b, d):
    """a -> b and b -> a through bundle files addressed to the peer id."""
    pa = os.path.join(d, f"{a.name}-to-{b.name}.bundle")
    pb = os.path.join(d, f"{b.name}-to-{a.name}.bundle")
    for p in (pa, pb):
        if os.path.exists(p):
            os.remove(p)
    a.out(pa, b.id)
    rb = b.inn(pa)
    b.out(pb, a.id)
    ra = a.inn(pb)
    return rb, ra


def converge(devs, d, rounds=3):
    for _ in range(rounds):
        for i, a in enumerate(devs):
            for b in devs[i+1:]:
                sync_pair(a, b, d)


def compare(devs, verbose=True):
    snaps = {x.name: x.snapshot() for x in devs}
    base = devs[0].name
    ok = True
    for n, s in snaps.items():
        for k in s:
            if s[k] != snaps[base][k]:
                ok = False
                if verbose:
                    print(f"  DIFF {k}: {base} vs {n}")
                    A, B = set(map(tuple, snaps[base][k] or [])), set(map(tuple, s[k] or []))
                    print("    only", base, sorted(A - B)[:10])
                    print("    only", n, sorted(B - A)[:10])
    for x in devs:
        st = x.status()
        if st['pending']['ops'] or st['waiting_for_schema']:
            ok = False
            if verbose:
                print("  PENDING/WAITING", x.name, st['pending'], st['waiting_for_schema'])
    return ok


def all_traces(dev):
    """every value visible anywhere on a device: tables, conflict records, sync_lost"""
    txt = []
    for t in TABLES:
        try:
            txt += [repr(r) for r in dev.q(f"SELECT * FROM {t}")]
        except apsw.SQLError:
            pass
    txt += [repr(r) for r in dev.q("SELECT local_values, remote_values FROM sync_conflict_records")]
    txt += [repr(r) for r in dev.q("SELECT cell_values FROM sync_lost")]
    return "\n".join(txt)
