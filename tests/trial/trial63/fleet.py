#!/usr/bin/env python3
"""Field-service fleet simulation for sqlite-sync (a new user's trial, 2026-12-07: tests/trial/trial63).

Devices: L1, L2 laptops (sync with each other every round); P1, P2 phones of L1;
P3 phone of L2 (offline for a stretch of rounds); C = `cp` of P2's file at round COPY_AT,
opened with the extension loaded before writing, then a phone of L2.
Every write puts a unique value in each cell it writes; a model with vector clocks tracks
which writes are live (not overwritten by a write that saw them) to check nothing is lost.

usage: fleet.py OUTDIR [--rounds N] [--seed S] [--forget] [--offline A B] [--l1-compact K]
       [--l2-compact K] [--p1-compact-every N] [--mix grow|steady|updonly] (--help: all)
"""
import apsw, json, random, time, os, shutil, sys, argparse, statistics
from collections import defaultdict

EXT = os.environ.get('EXT', os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../../dist/sync0'))
ap = argparse.ArgumentParser()
ap.add_argument('out')
ap.add_argument('--rounds', type=int, default=150)
ap.add_argument('--seed', type=int, default=1)
ap.add_argument('--forget', action='store_true', help='L2 forgets P3 while it is offline')
ap.add_argument('--offline', type=int, nargs=2, default=[40, 110])
ap.add_argument('--copy-at', type=int, default=15)
ap.add_argument('--l1-compact', type=int, default=5, help='L1 calls sync_compact() every K rounds (0: never)')
ap.add_argument('--l2-compact', type=int, default=10)
ap.add_argument('--p1-compact-every', type=int, default=1000, help="P1's compact_every")
ap.add_argument('--edits', type=float, default=3.0)
ap.add_argument('--jobs', type=int, default=100)
ap.add_argument('--sabotage', action='store_true')
ap.add_argument('--mix', default='grow', choices=['grow', 'steady', 'updonly'])
args = ap.parse_args()
random.seed(args.seed)
OUT = args.out
SABOTAGE = args.sabotage
shutil.rmtree(OUT, ignore_errors=True)
os.makedirs(OUT + '/bundles')

JOB_COLS = ['customer', 'address', 'phone', 'status', 'priority', 'assigned_to',
            'scheduled_at', 'duration_min', 'price']
NOTE_COLS = ['job_id', 'author', 'body', 'created_at']
COLS = {'jobs': JOB_COLS, 'notes': NOTE_COLS}
SCHEMA = [
    "CREATE TABLE IF NOT EXISTS jobs(id TEXT PRIMARY KEY, customer TEXT, address TEXT, phone TEXT, "
    "status TEXT, priority INTEGER, assigned_to TEXT, scheduled_at REAL, duration_min INTEGER, price REAL)",
    "CREATE TABLE IF NOT EXISTS notes(id TEXT PRIMARY KEY, job_id TEXT REFERENCES jobs(id) ON DELETE CASCADE, "
    "author TEXT, body TEXT, created_at REAL)",
    "CREATE INDEX IF NOT EXISTS notes_job ON notes(job_id)",
]
TOMB = ('<TOMB>',)
MIXES = {  # cumulative thresholds; the rest is 'delete a note'
    'grow':   dict(upd=.55, newjob=.62, deljob=.67, reins=.72, newnote=.85, updnote=.95),
    'steady': dict(upd=.80, newjob=.80, deljob=.82, reins=.84, newnote=.84, updnote=.99),
    'updonly': dict(upd=.85, newjob=.85, deljob=.85, reins=.85, newnote=.85, updnote=1.0),
}

TH = MIXES[args.mix]
G = [0]
def uval(dev, col):
    G[0] += 1
    g = G[0]
    if col in ('priority', 'duration_min'):
        return g
    if col in ('scheduled_at', 'price', 'created_at'):
        return g + 0.5
    return f'{dev}-{col[:3]}-{g}'

def rid():
    return '%032x' % random.getrandbits(128)

# ---------------------------------------------------------------- model
class Write:
    __slots__ = ('dev', 'seq', 'vc', 'table', 'pk', 'vals', 'round')
MODEL = defaultdict(list)   # (table, pk, col) -> [Write]
ROWS = set()                # (table, pk)
NWRITES = [0]

def log(*a):
    print(*a, flush=True)

# ---------------------------------------------------------------- devices
class Dev:
    def __init__(self, name, path, fresh=True):
        self.name, self.path = name, path
        self.mvc = defaultdict(int)     # model vector clock
        self.online = True
        self.peer_ids = {}              # peer name -> ext id last seen in a bundle from it
        self.sent = []                  # (round, to, ops, bytes, expected)
        self.imports = []               # (round, from, ms, applied, result)
        self.deleted_keys = set()
        self.errors = []
        self.open()
        if fresh:
            q(self, "SELECT sync_init()")
            for s in SCHEMA:
                self.c.execute(s)
            q(self, "SELECT sync_enable('jobs')")
            q(self, "SELECT sync_enable('notes')")

    def open(self):
        self.c = apsw.Connection(self.path)
        self.c.enable_load_extension(True)
        self.c.load_extension(EXT)
        self.c.execute("PRAGMA foreign_keys=ON")
        self.c.execute("PRAGMA busy_timeout=5000")

    @property
    def id(self):
        return q(self, "SELECT sync_device_id()")

    def record(self, table, pk, vals, rnd):
        d = self.name
        self.mvc[d] += 1
        w = Write()
        w.dev, w.seq, w.vc, w.table, w.pk, w.vals, w.round = d, self.mvc[d], dict(self.mvc), table, pk, vals, rnd
        for col in vals:
            MODEL[(table, pk, col)].append(w)
        ROWS.add((table, pk))
        NWRITES[0] += 1

def q(dev, sql, params=()):
    r = dev.c.execute(sql, params).fetchall()
    return r[0][0] if r and len(r[0]) == 1 else r

def changes(dev):
    return dev.c.changes()

# ---------------------------------------------------------------- app edits
def pick_job(d, hot):
    if hot and HOT and random.random() < 0.35:
        k = random.choice(HOT)
        r = d.c.execute("SELECT id FROM jobs WHERE id=?", (k,)).fetchall()
        if r:
            return k
    r = d.c.execute("SELECT id FROM jobs ORDER BY id").fetchall()
    return random.choice(r)[0] if r else None

def edit(d, rnd):
    x = random.random()
    if x < TH['upd']:   # update 1-3 fields of a job
        k = pick_job(d, True)
        if not k: return
        cols = random.sample(JOB_COLS, random.choice([1, 1, 2, 3]))
        vals = {c: uval(d.name, c) for c in cols}
        d.c.execute(f"UPDATE jobs SET {', '.join(c + '=?' for c in cols)} WHERE id=?", (*vals.values(), k))
        if changes(d) == 1:
            d.record('jobs', k, vals, rnd)
    elif x < TH['newjob']:  # new job
        k = rid()
        vals = {c: uval(d.name, c) for c in JOB_COLS}
        d.c.execute(f"INSERT INTO jobs(id, {', '.join(JOB_COLS)}) VALUES (?{',?' * len(JOB_COLS)})", (k, *vals.values()))
        d.record('jobs', k, vals, rnd)
    elif x < TH['deljob']:  # delete a job (its notes cascade)
        k = pick_job(d, random.random() < 0.3)
        if not k or k in HOT_NODELETE: return
        notes = [r[0] for r in d.c.execute("SELECT id FROM notes WHERE job_id=?", (k,))]
        d.c.execute("DELETE FROM jobs WHERE id=?", (k,))
        if changes(d) == 1:
            for n in notes:
                d.record('notes', n, {c: TOMB for c in NOTE_COLS}, rnd)
            d.record('jobs', k, {c: TOMB for c in JOB_COLS}, rnd)
            d.deleted_keys.add(k)
    elif x < TH['reins']:  # re-insert a job deleted earlier (this device or another)
        cand = [k for k in DELETED if not d.c.execute("SELECT 1 FROM jobs WHERE id=?", (k,)).fetchall()]
        if not cand: return
        k = random.choice(cand)
        vals = {c: uval(d.name, c) for c in JOB_COLS}
        try:
            d.c.execute(f"INSERT INTO jobs(id, {', '.join(JOB_COLS)}) VALUES (?{',?' * len(JOB_COLS)})", (k, *vals.values()))
        except apsw.ConstraintError as e:
            log(f'  r{rnd} {d.name} re-insert refused: {e}'); return
        d.record('jobs', k, vals, rnd)
    elif x < TH['newnote']:  # new note on a job
        k = pick_job(d, True)
        if not k: return
        n = rid()
        vals = {c: uval(d.name, c) for c in NOTE_COLS[1:]}
        d.c.execute("INSERT INTO notes(id, job_id, author, body, created_at) VALUES (?,?,?,?,?)", (n, k, *vals.values()))
        vals = {'job_id': k, **vals}
        d.record('notes', n, vals, rnd)
    elif x < TH['updnote']:  # edit a note
        r = d.c.execute("SELECT id FROM notes ORDER BY id").fetchall()
        if not r: return
        r = [random.choice(r)]
        cols = random.sample(['author', 'body'], random.choice([1, 2]))
        vals = {c: uval(d.name, c) for c in cols}
        d.c.execute(f"UPDATE notes SET {', '.join(c + '=?' for c in cols)} WHERE id=?", (*vals.values(), r[0][0]))
        if changes(d) == 1:
            d.record('notes', r[0][0], vals, rnd)
    else:           # delete a note
        r = d.c.execute("SELECT id FROM notes ORDER BY id").fetchall()
        if not r: return
        r = [random.choice(r)]
        d.c.execute("DELETE FROM notes WHERE id=?", (r[0][0],))
        if changes(d) == 1:
            d.record('notes', r[0][0], {c: TOMB for c in NOTE_COLS}, rnd)

def own_new_ops_to_model(d, before_seq, rnd):
    """Read this device's ops above before_seq from sync_log (used for resolutions)."""
    me = d.id
    n = 0
    for table, kind, pk, vals in d.c.execute(
            'SELECT "table", kind, pk, "values" FROM sync_log WHERE device=? AND seq>? ORDER BY seq', (me, before_seq)):
        if table not in COLS: continue
        key = json.loads(pk)['id']
        if kind == 'delete':
            v = {c: TOMB for c in COLS[table]}
        else:
            v = {c: x for c, x in json.loads(vals).items() if c != 'id'}
        d.record(table, key, v, rnd)
        if table == 'jobs' and kind == 'delete':
            d.deleted_keys.add(key)
        n += 1
    return n

def own_seq(d):
    return json.loads(q(d, "SELECT sync_clock()")).get(d.id, 0)

def resolve(d, how, rnd):
    s0 = own_seq(d)
    total = 0
    for _ in range(6):
        n_open = q(d, "SELECT count(*) FROM sync_conflicts WHERE NOT resolved AND kind='concurrent'")
        if not n_open: break
        try:
            if how == 'table':
                r = d.c.execute("SELECT sync_resolve(id, CASE WHEN local_op_id = winner_op_id THEN 'local' ELSE 'remote' END) "
                                "FROM sync_conflicts WHERE NOT resolved AND kind='concurrent'").fetchall()
            elif how == 'remote':
                r = d.c.execute("SELECT sync_resolve(id, 'remote') FROM sync_conflicts WHERE NOT resolved AND kind='concurrent'").fetchall()
            else:  # new values for the conflict's columns
                rows = d.c.execute("SELECT id, columns FROM sync_conflicts WHERE NOT resolved AND kind='concurrent'").fetchall()
                r = []
                for cid, cols in rows:
                    # new values for the listed columns; never the key (refused) nor notes.job_id (a FOREIGN KEY)
                    vals = {c: uval(d.name, c) for c in json.loads(cols) if c not in ('id', 'job_id')}
                    try:
                        r.append((q(d, "SELECT sync_resolve(?, ?)", (cid, json.dumps(vals) if vals else 'remote')),))
                    except apsw.Error as e:
                        if 'changed after' not in str(e) and 'no conflict' not in str(e):
                            d.errors.append((rnd, 'resolve', str(e)))
                            log(f'  r{rnd} {d.name} resolve error: {e}')
            total += sum(x[0] for x in r)
        except apsw.Error as e:
            if 'changed after' not in str(e):
                d.errors.append((rnd, 'resolve', str(e)))
                log(f'  r{rnd} {d.name} resolve error: {e}')
    own_new_ops_to_model(d, s0, rnd)
    return total

# ---------------------------------------------------------------- sync
BN = [0]
def clock(d):
    return json.loads(q(d, "SELECT sync_clock()"))

def send(src, dst, rnd):
    """src exports a bundle for dst; dst imports it. Returns import result."""
    BN[0] += 1
    path = f'{OUT}/bundles/{rnd:03d}-{BN[0]:05d}-{src.name}-to-{dst.name}.bundle'
    peer = src.peer_ids.get(dst.name)
    sc, dc = clock(src), clock(dst)
    expected = sum(max(0, v - dc.get(k, 0)) for k, v in sc.items())
    r = json.loads(q(src, "SELECT sync_bundle_out(?, ?)", (peer, path)))
    src.sent.append((rnd, dst.name, r['ops'], r['bytes'], expected, peer is not None))
    snap = dict(src.mvc)
    res = imp(dst, path, rnd, src.name)
    if res is not None:
        for k, v in snap.items():
            dst.mvc[k] = max(dst.mvc[k], v)
    return res

def imp(dst, path, rnd, srcname):
    t = time.perf_counter()
    try:
        res = json.loads(q(dst, "SELECT sync_bundle_in(?)", (path,)))
    except apsw.Error as e:
        ms = (time.perf_counter() - t) * 1000
        msg = str(e)
        log(f'  r{rnd} {dst.name} <- {srcname}: IMPORT ERROR {msg[:300]}')
        dst.errors.append((rnd, f'import from {srcname}', msg))
        if 'sync_fork' in msg:
            newid = q(dst, "SELECT sync_fork()")
            log(f'  r{rnd} {dst.name}: sync_fork() -> {newid}; importing again')
            return imp(dst, path, rnd, srcname)
        return None
    ms = (time.perf_counter() - t) * 1000
    dst.imports.append((rnd, srcname, ms, res['applied_count'], res))
    dst.peer_ids[srcname] = res['source_device_id']
    if res['pending_count'] or res['discarded_count']:
        log(f'  r{rnd} {dst.name} <- {srcname}: pending {res["pending_count"]} discarded {res["discarded_count"]}')
    if res.get('compacted'):
        dst.auto_compactions = getattr(dst, 'auto_compactions', 0) + 1
    return res

def status(d):
    return json.loads(q(d, "SELECT sync_status()"))

def dbbytes(d):
    return q(d, "PRAGMA page_count") * q(d, "PRAGMA page_size")

# ---------------------------------------------------------------- fleet
t0 = time.time()
L1 = Dev('L1', f'{OUT}/L1.db')
# initial data on L1
HOT, HOT_NODELETE, DELETED = [], set(), []
for i in range(args.jobs):
    k = rid()
    vals = {c: uval('L1', c) for c in JOB_COLS}
    L1.c.execute(f"INSERT INTO jobs(id, {', '.join(JOB_COLS)}) VALUES (?{',?' * len(JOB_COLS)})", (k, *vals.values()))
    L1.record('jobs', k, vals, 0)
    if i < 8: HOT.append(k)
    for j in range(random.choice([0, 1, 2])):
        n = rid()
        nv = {c: uval('L1', c) for c in NOTE_COLS[1:]}
        L1.c.execute("INSERT INTO notes VALUES (?,?,?,?,?)", (n, k, *nv.values()))
        L1.record('notes', n, {'job_id': k, **nv}, 0)
HOT_NODELETE = set(HOT[:4])   # half the hot rows are never deleted by the app

L2 = Dev('L2', f'{OUT}/L2.db')
P1 = Dev('P1', f'{OUT}/P1.db')
P2 = Dev('P2', f'{OUT}/P2.db')
P3 = Dev('P3', f'{OUT}/P3.db')
q(P1, "INSERT OR REPLACE INTO _sync_state(name, value) VALUES ('compact_every', ?)", (args.p1_compact_every,))
# set-up: every new device imports L1's full bundle (README: Adding a device)
for d in (L2, P1, P2, P3):
    send(L1, d, 0)
devs = {d.name: d for d in (L1, L2, P1, P2, P3)}
PHONES = {'L1': ['P1', 'P2'], 'L2': ['P3']}
C = None

def sync_round(rnd, final=False):
    for lap, phones in PHONES.items():
        for p in phones:
            if devs[p].online:
                send(devs[p], devs[lap], rnd)
    send(devs['L1'], devs['L2'], rnd)
    send(devs['L2'], devs['L1'], rnd)
    for lap, phones in PHONES.items():
        for p in phones:
            if devs[p].online:
                send(devs[lap], devs[p], rnd)

ROWS_TABLE = []
def metrics(rnd):
    for d in devs.values():
        st = status(d)
        sent = [s for s in d.sent if rnd - 10 < s[0] <= rnd]
        imps = [i for i in d.imports if rnd - 10 < i[0] <= rnd]
        ROWS_TABLE.append(dict(
            round=rnd, dev=d.name, online=d.online, ops=st['log']['ops'], log_kib=(st['log']['bytes'] or 0) // 1024,
            db_kib=dbbytes(d) // 1024, status_db_kib=st['log']['database_bytes'] // 1024,
            rows=q(d, "SELECT count(*) FROM jobs") + q(d, "SELECT count(*) FROM notes"),
            open_conf=st['open_conflicts'], held=st['held_out_rows'], pending=st['pending']['ops'],
            lost=st['lost_writes'],
            sent=[f"{s[1]}:{s[2]}op/{s[4]}exp/{s[3] // 1024}K" for s in sent[-3:]],
            sent_max_ops=max([s[2] for s in sent], default=0),
            sent_max_excess=max([s[2] - s[4] for s in sent if s[5]], default=0),
            sent_null=sum(1 for s in sent if not s[5]),
            sent_max_kib=max([s[3] for s in sent], default=0) // 1024,
            imp_ms_med=round(statistics.median([i[2] for i in imps]), 1) if imps else None,
            imp_ms_max=round(max([i[2] for i in imps]), 1) if imps else None,
            stable=len(st['stable']), peers=len(st['peers']),
            meta={t: q(d, f'SELECT count(*) FROM "{t}"') for (t,) in d.c.execute(
                "SELECT name FROM sqlite_schema WHERE type='table' AND name LIKE '\\_sync%' ESCAPE '\\'")},
            meta_pages=dict(d.c.execute("SELECT name, count(*) FROM dbstat WHERE name LIKE '\\_sync%' ESCAPE '\\' GROUP BY name").fetchall())))

for rnd in range(1, args.rounds + 1):
    # offline window for P3
    if rnd == args.offline[0]:
        P3.online = False; log(f'r{rnd}: P3 goes offline')
    if rnd == args.offline[1]:
        P3.online = True; log(f'r{rnd}: P3 comes back')
    if args.forget and rnd == (args.offline[0] + args.offline[1]) // 2:
        r = q(L2, "SELECT sync_forget(?)", (L2.peer_ids['P3'],))
        log(f'r{rnd}: L2 forgets P3: {r}')
    # edits
    for d in devs.values():
        n = random.choice(range(int(2 * args.edits) + 1))
        if random.random() < 0.2 and n > 1:   # a few edits in one transaction
            with d.c:
                for _ in range(n): edit(d, rnd)
        else:
            for _ in range(n): edit(d, rnd)
    for d in devs.values():
        for k in d.deleted_keys:
            if k not in DELETED: DELETED.append(k)
        d.deleted_keys.clear()
    sync_round(rnd)
    # copy of P2 made with cp (README: copy a device's file), opened with the extension before writing
    if rnd == args.copy_at:
        shutil.copyfile(P2.path, f'{OUT}/C.db')
        C = Dev('C', f'{OUT}/C.db', fresh=False)
        C.mvc = defaultdict(int, P2.mvc)
        C.peer_ids = {}   # its first bundle to L2: NULL (L2 never heard of it)
        st = status(C)
        log(f'r{rnd}: C = cp P2.db: id {st["device_id"]} former_ids {st["former_ids"]} (P2 is {P2.id})')
        devs['C'] = C
        PHONES['L2'].append('C')
    # compaction and resolution
    if args.l1_compact and rnd % args.l1_compact == 0:
        r = json.loads(q(L1, "SELECT sync_compact()"))
        L1.compactions = getattr(L1, 'compactions', []) + [r]
    if args.l2_compact and rnd % args.l2_compact == 0:
        r = json.loads(q(L2, "SELECT sync_compact()"))
        L2.compactions = getattr(L2, 'compactions', []) + [r]
    if rnd % 10 == 0: resolve(L1, 'table', rnd)
    if rnd % 15 == 0: resolve(P1, 'remote', rnd)
    if rnd % 12 == 0: resolve(L2, 'values', rnd)
    if rnd % 10 == 0:
        metrics(rnd)
        m = [r for r in ROWS_TABLE if r['round'] == rnd]
        log(f'r{rnd} ({time.time() - t0:.0f}s) ' + ' | '.join(
            f"{r['dev']} ops={r['ops']} db={r['db_kib']}K" for r in m))

# final: everyone syncs, no more edits
for extra in range(1, 5):
    sync_round(args.rounds + extra, final=True)
metrics(args.rounds + 4)
log(f'done syncing in {time.time() - t0:.0f}s; {NWRITES[0]} model writes')

# ---------------------------------------------------------------- compare devices
def table_rows(d, t):
    return sorted(d.c.execute(f"SELECT * FROM {t} ORDER BY id").fetchall(), key=repr)

def open_conf(d):
    out = set()
    for cid, kind, t, pk, cols, lv, rv, win in d.c.execute(
            "SELECT id, kind, table_name, pk, columns, local_values, remote_values, winner_op_id FROM sync_conflicts WHERE NOT resolved"):
        out.add((cid, kind, t, pk, cols, frozenset([lv, rv]), win))
    return out

names = list(devs)
ref = devs[names[0]]
report = {'devices': {}, 'pairs': {}}
for n in names:
    d = devs[n]
    st = status(d)
    report['devices'][n] = dict(id=st['device_id'], former_ids=st['former_ids'], clock=st['clock'],
                                pending=st['pending']['ops'], open_conflicts=st['open_conflicts'],
                                held_out=st['held_out_rows'], lost_writes=st['lost_writes'],
                                jobs=q(d, "SELECT count(*) FROM jobs"), notes=q(d, "SELECT count(*) FROM notes"),
                                errors=d.errors)
for n in names[1:]:
    d = devs[n]
    report['pairs'][f'{names[0]}-{n}'] = dict(
        jobs_same=table_rows(ref, 'jobs') == table_rows(d, 'jobs'),
        notes_same=table_rows(ref, 'notes') == table_rows(d, 'notes'),
        conflicts_same=open_conf(ref) == open_conf(d),
        clock_same=clock(ref) == clock(d))
# README's own check (ATTACH + EXCEPT) between L1 and each device
for n in names[1:]:
    ref.c.execute(f"ATTACH '{devs[n].path}' AS x")
    same = q(ref, "SELECT (NOT EXISTS (SELECT * FROM main.jobs EXCEPT SELECT * FROM x.jobs) AND NOT EXISTS (SELECT * FROM x.jobs EXCEPT SELECT * FROM main.jobs)"
                  " AND NOT EXISTS (SELECT * FROM main.notes EXCEPT SELECT * FROM x.notes) AND NOT EXISTS (SELECT * FROM x.notes EXCEPT SELECT * FROM main.notes))")
    report['pairs'][f'{names[0]}-{n}']['readme_except_check'] = bool(same)
    ref.c.execute("DETACH x")

# ---------------------------------------------------------------- model check
def norm(v):
    return v

def model_check(d):
    rows = {}
    for t in COLS:
        for r in d.c.execute(f"SELECT id, {', '.join(COLS[t])} FROM {t}"):
            rows[(t, r[0])] = dict(zip(COLS[t], r[1:]))
    confvals = defaultdict(list)
    conf_cells = []
    deleted_side = set()
    for kind, t, pk, cols, lv, rv in d.c.execute(
            "SELECT kind, table_name, pk, columns, local_values, remote_values FROM sync_conflicts WHERE NOT resolved"):
        key = json.loads(pk)['id']
        sides = [json.loads(lv)] if kind == 'constraint' else [json.loads(lv), json.loads(rv)]
        for s in sides:
            if s is None:
                deleted_side.add((t, key))
            else:
                for c, v in s.items():
                    confvals[(t, key, c)].append(v)
        if kind == 'concurrent':
            conf_cells.append((t, key, json.loads(cols)))
    lost, stale, dead_shown, spurious = [], [], [], []
    tomb_live = {}
    for (t, key, col), ws in MODEL.items():
        live = [w for w in ws if not any(o is not w and o.vc.get(w.dev, 0) >= w.seq for o in ws)]
        livevals = [w.vals[col] for w in live]
        present = (t, key) in rows
        shown = rows[(t, key)][col] if present else None
        for w in live:
            v = w.vals[col]
            if v is TOMB:
                if present and (t, key) not in deleted_side:
                    tomb_live[id(w)] = tomb_live.get(id(w), (w, 0))[0], tomb_live.get(id(w), (w, 0))[1] + 1
            elif not (present and shown == v) and v not in confvals[(t, key, col)]:
                lost.append((t, key[:8], col, v, w.dev, w.round))
        if present and shown not in livevals:
            if all(v is TOMB for v in livevals) and shown in [w.vals[col] for w in ws]:
                pass   # a row brought back shows what its reviving writer saw
            else:
                stale.append((t, key[:8], col, shown, [x if x is not TOMB else 'TOMB' for x in livevals]))
    for t, key, cols in conf_cells:
        for c in cols:
            if c == 'id': continue   # the key: not a cell of the model
            ws = MODEL.get((t, key, c), [])
            live = [w for w in ws if not any(o is not w and o.vc.get(w.dev, 0) >= w.seq for o in ws)]
            if len(set(repr(w.vals[c]) for w in live)) < 2:
                spurious.append((t, key[:8], c, len(live)))
    # a delete that is still live in every cell it wrote, on a row the table shows, with no record of it
    for w, n in tomb_live.values():
        if n == len(w.vals):
            dead_shown.append((w.table, w.pk[:8], w.dev, w.round))
    extra_rows = [k for k in rows if k not in ROWS]
    return dict(lost=len(lost), lost_eg=lost[:5], stale=len(stale), stale_eg=stale[:5],
                deleted_but_shown_no_record=len(dead_shown), dead_eg=dead_shown[:5],
                spurious_conflict_cells=len(spurious), spurious_eg=spurious[:5], rows_never_written=len(extra_rows),
                cells=len(MODEL), multi_live_cells=sum(1 for (t, k, c), ws in MODEL.items()
                    if len(set(repr(w.vals[c]) for w in ws if not any(o is not w and o.vc.get(w.dev, 0) >= w.seq for o in ws))) > 1))

if SABOTAGE:
    # sanity check of the checker: a write the model does not know of, made with capture off
    ref.c.execute("PRAGMA foreign_keys=OFF")
    k = ref.c.execute("SELECT id FROM jobs ORDER BY id LIMIT 1").fetchall()[0][0]
    ref.c.execute("CREATE TEMP TABLE keep AS SELECT * FROM jobs WHERE id=?", (k,))
    ref.c.execute("DELETE FROM jobs WHERE id=?", (k,))   # captured, but not in the model
report['model'] = {n: model_check(devs[n]) for n in names}
report['writes'] = NWRITES[0]
report['elapsed_s'] = round(time.time() - t0)
report['compactions'] = {'L1': getattr(L1, 'compactions', [])[-5:], 'L2': getattr(L2, 'compactions', [])[-5:]}
report['auto_compactions'] = {n: getattr(devs[n], 'auto_compactions', 0) for n in names}
report['sent_worst'] = {n: sorted([s for s in devs[n].sent if s[5]], key=lambda s: s[2] - s[4])[-3:] for n in names}
json.dump(report, open(f'{OUT}/report.json', 'w'), indent=1, default=str)
json.dump(ROWS_TABLE, open(f'{OUT}/metrics.json', 'w'), indent=1)
json.dump({n: [(i[0], i[1], round(i[2], 2), i[3]) for i in devs[n].imports] for n in names}, open(f'{OUT}/imports.json', 'w'))
json.dump({n: devs[n].sent for n in names}, open(f'{OUT}/sent.json', 'w'))

log(json.dumps({k: report[k] for k in ('pairs', 'model', 'auto_compactions', 'elapsed_s')}, indent=1, default=str))
for n in names:
    dv = report['devices'][n]
    log(n, {k: dv[k] for k in ('pending', 'open_conflicts', 'held_out', 'lost_writes', 'jobs', 'notes')}, 'errors:', dv['errors'][:3])
