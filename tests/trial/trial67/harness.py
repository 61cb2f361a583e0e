#!/usr/bin/env python3
"""Randomized field-inspection fleet for sqlite-sync.
usage: harness.py SEED [--kind plain|nocompact|advice|autolow] [--steps N] [--keep]
       harness.py --replay FILE.json   (a step list saved by a run or by shrink.py)
Prints one summary line; exit 1 when a check failed."""
import apsw, os, sys, json, shutil, random, subprocess, argparse, traceback

HERE = os.path.dirname(os.path.abspath(__file__))
LIB = os.environ.get('LIB', os.path.join(HERE, '..', '..', '..', 'dist', 'sync0'))
BASE = '/tmp/trial67/runs'
SCHEMA = """
CREATE TABLE IF NOT EXISTS sites(id TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))), code TEXT UNIQUE, name TEXT);
CREATE TABLE IF NOT EXISTS inspections(id TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))), site_id TEXT REFERENCES sites(id) ON DELETE CASCADE, inspector TEXT, status TEXT, notes TEXT, updated_at TEXT);
CREATE TABLE IF NOT EXISTS photos(id TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))), inspection_id TEXT REFERENCES inspections(id), caption TEXT);
"""
TABLES = ['sites', 'inspections', 'photos']
COLS = {'sites': ['id', 'code', 'name'],
        'inspections': ['id', 'site_id', 'inspector', 'status', 'notes', 'updated_at'],
        'photos': ['id', 'inspection_id', 'caption']}
ACCOUNTED = {'sites': ['name'], 'inspections': ['inspector', 'notes', 'updated_at'], 'photos': ['caption']}
CODES = ['C1', 'C2', 'C3', 'C4', 'C5']
STATUSES = ['open', 'done', 'failed']
NAMES = ['laptop', 'tab1', 'tab2', 'phone']

def q(c, sql, *p):
    return c.execute(sql, p).fetchall()
def q1(c, sql, *p):
    r = q(c, sql, *p)
    return r[0][0] if r else None
def j(c, sql, *p):
    return json.loads(q1(c, sql, *p))

class Dev:
    def __init__(s, slot, name, path):
        s.slot, s.name, s.path = slot, name, path
        s.conn = None
        s.known = set()
        s.mode = 'never'
        s.gen = 0          # bumps when the slot gets a new database (replacement)
    def open(s):
        if s.conn is None:
            c = apsw.Connection(s.path)
            c.enable_load_extension(True)
            c.load_extension(LIB)
            c.execute("PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000")
            q(c, "SELECT sync_init()")
            s.conn = c
        return s.conn
    def close(s):
        if s.conn is not None:
            s.conn.close(); s.conn = None
    def id(s):
        return q1(s.open(), "SELECT sync_device_id()")

class Fleet:
    def __init__(s, seed, kind, steps_n, root):
        s.seed, s.kind, s.steps_n, s.root = seed, kind, steps_n, root
        s.folder = os.path.join(root, 'folder'); os.makedirs(s.folder)
        os.makedirs(os.path.join(root, 'backups'))
        s.devs = []
        s.writes = []          # dicts
        s.files = {}           # bundle file name -> frozenset(known)
        s.backups = []         # dicts: slot, gen, path, known
        s.lost_ever = []       # rows of sync_lost seen anywhere, any time
        s.anomalies = []
        s.ctr = 0
        s.log = []
        s.stats = {}
        s.step_i = -1
    def note(s, kind, msg):
        s.anomalies.append({'step': s.step_i, 'kind': kind, 'msg': msg})
    def uniq(s, prefix):
        s.ctr += 1
        return '%s%d' % (prefix, s.ctr)
    def rid(s, rng):
        return '%032x' % rng.getrandbits(128)

    # ---------------- setup ----------------
    def setup(s, rng):
        for i, n in enumerate(NAMES):
            d = Dev(i, n, os.path.join(s.root, '%s.db' % n))
            s.devs.append(d)
        if s.kind == 'nocompact':
            modes = ['never'] * 4
        else:
            modes = [rng.choice(['every', 'every', 'never']) for _ in range(4)]
            modes[0] = 'every'; modes[1] = 'never'
        for d, m in zip(s.devs, modes):
            d.mode = m
        for d in s.devs:
            s.fresh(d)
        for d in s.devs:
            c = d.open()
            if s.kind == 'autolow':
                q(c, "INSERT OR REPLACE INTO _sync_state(name, value) VALUES ('compact_every', ?)", rng.choice([3, 5, 10]))
            elif rng.random() < 0.5:
                q(c, "INSERT OR REPLACE INTO _sync_state(name, value) VALUES ('compact_every', 2000)")
        for _ in range(2):
            for d in s.devs:
                s.folder_sync(d, compact=False)

    def fresh(s, d):
        if os.path.exists(d.path):
            os.remove(d.path)
        c = d.open()
        c.execute(SCHEMA)
        for t in TABLES:
            q(c, "SELECT sync_enable(?)", t)
        d.known = set()

    # ---------------- imports / exports with count checks ----------------
    def snapshot_counts(s, c):
        st = j(c, "SELECT sync_status()")
        open_ids = set(r[0] for r in q(c, "SELECT id FROM sync_conflicts WHERE kind='concurrent' AND NOT resolved"))
        lost = q1(c, "SELECT count(*) FROM sync_lost")
        return st, open_ids, lost
    def check_import(s, d, res, before, where):
        c = d.open()
        st, open_ids, lost = s.snapshot_counts(c)
        _, open_before, lost_before = before
        held = q1(c, "SELECT count(*) FROM sync_conflicts WHERE kind='constraint'")
        if res.get('held_out_count') != held:
            s.note('count', '%s on %s: held_out_count %s but sync_conflicts has %d constraint rows' % (where, d.name, res.get('held_out_count'), held))
        if res.get('pending_count') != st['pending']['ops']:
            s.note('count', '%s on %s: pending_count %s but sync_status pending.ops %s' % (where, d.name, res.get('pending_count'), st['pending']['ops']))
        if res.get('lost_count', 0) != lost - lost_before:
            s.note('count', '%s on %s: lost_count %s but sync_lost grew %d -> %d (bundles imported in this call: %s)' % (where, d.name, res.get('lost_count'), lost_before, lost, res.get('imported', 1)))
        if st['lost_writes'] != lost:
            s.note('count', '%s on %s: status lost_writes %s but sync_lost has %d' % (where, d.name, st['lost_writes'], lost))
        new_open = len(open_ids - open_before)
        cc = res.get('conflict_count', 0)
        if where.startswith('folder_in') and cc != new_open:
            s.note('count', '%s on %s: conflict_count %s but %d open conflicts are new (before %d, after %d)' % (where, d.name, cc, new_open, len(open_before), len(open_ids)))
        if where.startswith('bundle_in') and cc < new_open:
            s.note('count', '%s on %s: conflict_count %s but %d open conflicts are new' % (where, d.name, cc, new_open))
        if st['open_conflicts'] != len(open_ids):
            s.note('count', '%s on %s: status open_conflicts %s but sync_conflicts lists %d' % (where, d.name, st['open_conflicts'], len(open_ids)))
        if lost > 0:
            s.record_lost(d)
        comp = res.get('compacted')
        s.stats['auto_compactions'] = s.stats.get('auto_compactions', 0) + (1 if comp and comp.get('floor') else 0)
    def record_lost(s, d):
        for r in q(d.open(), "SELECT device, seq, table_name, pk, kind, cell_values, certain, reason FROM sync_lost"):
            key = (d.name, r[0], r[1], r[2], r[3], r[4], r[5])
            if key not in [tuple(x['key']) for x in s.lost_ever]:
                s.lost_ever.append({'key': list(key), 'table': r[2], 'pk': r[3], 'kind': r[4], 'values': r[5], 'certain': r[6], 'on': d.name})

    def handle_forgotten(s, d, e):
        if 'holds this device as forgotten' in str(e):
            newid = q1(d.open(), "SELECT sync_fork()")
            s.log.append('  %s forgotten -> sync_fork() = %s' % (d.name, newid))
            s.stats['forks_after_forgotten'] = s.stats.get('forks_after_forgotten', 0) + 1
            return True
        return False

    def folder_in(s, d, final=False):
        c = d.open()
        myid = d.id()
        files = [f for f in os.listdir(s.folder) if f.endswith('.bundle')]
        before = s.snapshot_counts(c)
        for attempt in range(2):
            try:
                res = j(c, "SELECT sync_folder_in(?)", s.folder)
                break
            except apsw.Error as e:
                if attempt == 0 and s.handle_forgotten(d, e):
                    myid = d.id(); before = s.snapshot_counts(c)
                    continue
                s.note('error', 'folder_in on %s: %s' % (d.name, e))
                return None
        skipped = set(os.path.basename(x['file']) for x in res['skipped'])
        for x in res['skipped']:
            s.note('refused-final' if final else 'refused', 'folder_in on %s skipped %s: %s' % (d.name, os.path.basename(x['file'])[:20], x['error']))
        for f in files:
            if f.startswith(myid) or f in skipped:
                continue
            if f in s.files:
                d.known |= s.files[f]
        s.check_import(d, res, before, 'folder_in')
        s.log.append('    folder_in on %s (%s): imported %s applied %s dup %s conflicts %s held %s pending %s discarded %s lost %s skipped %d' % (d.name, myid[:6], res['imported'], res['applied_count'], res['duplicate_count'], res['conflict_count'], res['held_out_count'], res['pending_count'], res['discarded_count'], res['lost_count'], len(res['skipped'])))
        return res
    def folder_out(s, d):
        c = d.open()
        try:
            res = j(c, "SELECT sync_folder_out(?)", s.folder)
        except apsw.Error as e:
            s.note('error', 'folder_out on %s: %s' % (d.name, e)); return None
        if res.get('path'):
            s.files[os.path.basename(res['path'])] = frozenset(d.known)
        s.log.append('    folder_out on %s: ops %s%s' % (d.name, res['ops'], '' if res.get('path') else ' (no file)'))
        return res
    def compact(s, d):
        c = d.open()
        before = j(c, "SELECT sync_status()")['log']['ops']
        try:
            res = j(c, "SELECT sync_compact()")
        except apsw.Error as e:
            s.note('error', 'sync_compact on %s: %s' % (d.name, e)); return None
        after = j(c, "SELECT sync_status()")['log']['ops']
        exp = before + (1 if res['floor'] is not None else 0) - res['removed']
        if after != exp:
            s.note('count', 'sync_compact on %s: %s but log.ops %d -> %d (expected %d)' % (d.name, res, before, after, exp))
        s.stats['compactions'] = s.stats.get('compactions', 0) + 1
        s.log.append('    compact on %s: %s' % (d.name, json.dumps(res)))
        s.stats['removed'] = s.stats.get('removed', 0) + res['removed']
        return res
    def folder_sync(s, d, compact=True, final=False):
        s.folder_in(d, final)
        s.folder_out(d)
        if compact and d.mode == 'every':
            s.compact(d)
    def blob(s, a, b):
        ca, cb = a.open(), b.open()
        bid = b.id()
        peer = bid if a is not b else None
        try:
            blob = q1(ca, "SELECT sync_bundle_out(?)", peer)
        except apsw.Error as e:
            s.note('error', 'bundle_out on %s: %s' % (a.name, e)); return
        snap = frozenset(a.known)
        before = s.snapshot_counts(cb)
        for attempt in range(2):
            try:
                res = j(cb, "SELECT sync_bundle_in(?)", blob)
                break
            except apsw.Error as e:
                if attempt == 0 and s.handle_forgotten(b, e):
                    before = s.snapshot_counts(cb); continue
                s.note('refused' if 'bundle' in str(e) else 'error', 'bundle_in %s->%s: %s' % (a.name, b.name, e)); return
        b.known |= snap
        s.check_import(b, res, before, 'bundle_in')
        s.log.append('    bundle_in %s->%s: applied %s dup %s conflicts %s pending %s discarded %s lost %s' % (a.name, b.name, res['applied_count'], res['duplicate_count'], res['conflict_count'], res['pending_count'], res['discarded_count'], res['lost_count']))
        if b.mode == 'every':
            s.compact(b)

    # ---------------- writes ----------------
    def rec(s, d, table, pk, kind, cols):
        w = {'wid': len(s.writes), 'dev': d.name, 'slot': d.slot, 'step': s.step_i, 'table': table, 'pk': pk,
             'kind': kind, 'cols': cols, 'knew': None}
        d.known.add(w['wid'])
        w['knew'] = frozenset(d.known)
        s.log.append('    write #%d on %s: %s %s %s %s' % (w['wid'], d.name, kind, table, pk[:6], json.dumps(cols)))
        s.writes.append(w)
    def write(s, d, rng):
        c = d.open()
        sites = [r[0] for r in q(c, "SELECT id FROM sites ORDER BY id")]
        insps = [r[0] for r in q(c, "SELECT id FROM inspections ORDER BY id")]
        photos = [r[0] for r in q(c, "SELECT id FROM photos ORDER BY id")]
        ops = ['ins_site'] * 2 + ['upd_site'] * (3 if sites else 0) + ['code'] * (1 if sites else 0) + ['del_site'] * (1 if sites else 0) \
            + ['ins_insp'] * (3 if sites else 0) + ['upd_insp'] * (5 if insps else 0) + ['del_insp'] * (1 if insps else 0) \
            + ['ins_photo'] * (2 if insps else 0) + ['upd_photo'] * (2 if photos else 0) + ['del_photo'] * (1 if photos else 0)
        op = rng.choice(ops)
        try:
            if op == 'ins_site':
                pk, code, name = s.rid(rng), rng.choice(CODES), s.uniq('name-')
                q(c, "INSERT INTO sites(id, code, name) VALUES (?,?,?)", pk, code, name)
                s.rec(d, 'sites', pk, 'insert', {'code': code, 'name': name})
            elif op == 'upd_site':
                pk, name = rng.choice(sites), s.uniq('name-')
                q(c, "UPDATE sites SET name=? WHERE id=?", name, pk)
                s.rec(d, 'sites', pk, 'update', {'name': name})
            elif op == 'code':
                pk, code = rng.choice(sites), rng.choice(CODES)
                old = q1(c, "SELECT code FROM sites WHERE id=?", pk)
                if old == code: return
                q(c, "UPDATE sites SET code=? WHERE id=?", code, pk)
                s.rec(d, 'sites', pk, 'update', {'code': code})
            elif op == 'del_site':
                pk = rng.choice(sites)
                ins = [r[0] for r in q(c, "SELECT id FROM inspections WHERE site_id=?", pk)]
                ph = [r[0] for r in q(c, "SELECT id FROM photos WHERE inspection_id IN (SELECT id FROM inspections WHERE site_id=?)", pk)]
                with c:
                    for p in ph: q(c, "DELETE FROM photos WHERE id=?", p)
                    q(c, "DELETE FROM sites WHERE id=?", pk)
                for p in ph: s.rec(d, 'photos', p, 'delete', {})
                for i in ins: s.rec(d, 'inspections', i, 'delete', {})
                s.rec(d, 'sites', pk, 'delete', {})
            elif op == 'ins_insp':
                pk = s.rid(rng)
                v = {'site_id': rng.choice(sites), 'inspector': s.uniq('insp-'), 'status': rng.choice(STATUSES),
                     'notes': s.uniq('note-'), 'updated_at': s.uniq('t-')}
                q(c, "INSERT INTO inspections(id, site_id, inspector, status, notes, updated_at) VALUES (?,?,?,?,?,?)",
                  pk, v['site_id'], v['inspector'], v['status'], v['notes'], v['updated_at'])
                s.rec(d, 'inspections', pk, 'insert', v)
            elif op == 'upd_insp':
                pk = rng.choice(insps)
                cols = rng.sample(['inspector', 'status', 'notes'], rng.randint(1, 2)) + ['updated_at']
                v = {k: (rng.choice(STATUSES) if k == 'status' else s.uniq(k[:4] + '-')) for k in cols}
                q(c, "UPDATE inspections SET %s WHERE id=?" % ', '.join('%s=?' % k for k in cols), *[v[k] for k in cols], pk)
                s.rec(d, 'inspections', pk, 'update', v)
            elif op == 'del_insp':
                pk = rng.choice(insps)
                ph = [r[0] for r in q(c, "SELECT id FROM photos WHERE inspection_id=?", pk)]
                with c:
                    for p in ph: q(c, "DELETE FROM photos WHERE id=?", p)
                    q(c, "DELETE FROM inspections WHERE id=?", pk)
                for p in ph: s.rec(d, 'photos', p, 'delete', {})
                s.rec(d, 'inspections', pk, 'delete', {})
            elif op == 'ins_photo':
                pk, ins, cap = s.rid(rng), rng.choice(insps), s.uniq('cap-')
                q(c, "INSERT INTO photos(id, inspection_id, caption) VALUES (?,?,?)", pk, ins, cap)
                s.rec(d, 'photos', pk, 'insert', {'inspection_id': ins, 'caption': cap})
            elif op == 'upd_photo':
                pk, cap = rng.choice(photos), s.uniq('cap-')
                q(c, "UPDATE photos SET caption=? WHERE id=?", cap, pk)
                s.rec(d, 'photos', pk, 'update', {'caption': cap})
            elif op == 'del_photo':
                pk = rng.choice(photos)
                q(c, "DELETE FROM photos WHERE id=?", pk)
                s.rec(d, 'photos', pk, 'delete', {})
            s.stats['writes'] = s.stats.get('writes', 0) + 1
        except apsw.ConstraintError as e:
            s.stats['app_constraint_errors'] = s.stats.get('app_constraint_errors', 0) + 1

    def resolve(s, d, rng):
        c = d.open()
        rows = q(c, "SELECT id, table_name, pk, columns, kind, local_values, remote_values FROM sync_conflicts WHERE NOT resolved ORDER BY id")
        if not rows: return
        cid, table, pk, cols, kind, lv, rv = rng.choice(rows)
        pk = json.loads(pk)['id']; cols = json.loads(cols)
        if kind == 'constraint':
            if 'UNIQUE' in q1(c, "SELECT reason FROM sync_conflicts WHERE id=?", cid) and rng.random() < 0.6:
                used = set(r[0] for r in q(c, "SELECT code FROM sites"))
                free = [x for x in CODES + ['C%d' % i for i in range(6, 40)] if x not in used]
                choice = json.dumps({'code': free[0]})
            else:
                choice = 'remote'
        else:
            r = rng.random()
            if r < 0.4: choice = 'local'
            elif r < 0.8: choice = 'remote'
            else:
                vals = {}
                for k in cols:
                    if k in ('id',): continue
                    if k in ACCOUNTED.get(table, []): vals[k] = s.uniq('res-')
                    elif k == 'status': vals[k] = rng.choice(STATUSES)
                if not vals: choice = 'remote'
                else: choice = json.dumps(vals)
        before_rows = {t: set(r[0] for r in q(c, "SELECT id FROM %s" % t)) for t in TABLES}
        try:
            ok = q1(c, "SELECT sync_resolve(?, ?)", cid, choice)
        except apsw.Error as e:
            msg = str(e)
            if 'changed after it was read' in msg or 'no conflict with id' in msg or 'would still break' in msg or 'constraint' in msg.lower():
                s.stats['resolve_refused'] = s.stats.get('resolve_refused', 0) + 1
                s.log.append('  resolve refused: %s' % msg[:150])
                return
            s.note('error', 'sync_resolve(%s, %s) on %s: %s' % (cid, choice, d.name, msg)); return
        s.stats['resolved'] = s.stats.get('resolved', 0) + 1
        if ok:
            # rows the resolution removed by the schema's ON DELETE CASCADE are writes of this device too
            for t in TABLES:
                for gone in sorted(before_rows[t] - set(r[0] for r in q(c, "SELECT id FROM %s" % t))):
                    if not (t == table and gone == pk): s.rec(d, t, gone, 'delete', {})
            row = q(c, "SELECT * FROM %s WHERE id=?" % table, pk)
            if not row:
                s.rec(d, table, pk, 'delete', {})
            else:
                vals = dict(zip(COLS[table], row[0]))
                allc = cols if kind == 'concurrent' else COLS[table][1:]
                s.rec(d, table, pk, 'resolve', {k: vals[k] for k in allc if k != 'id'})

    # ---------------- copies, backups, restores ----------------
    def take_backup(s, d, rng):
        method = rng.choice(['cp', 'backup', 'vacuum'])
        path = os.path.join(s.root, 'backups', 'b%d_%s_%s.db' % (len(s.backups), d.name, method))
        if method == 'cp':
            d.close(); shutil.copyfile(d.path, path)
        elif method == 'backup':
            d.close(); subprocess.run(['sqlite3', d.path, '.backup %s' % path], check=True)
        else:
            q(d.open(), "VACUUM INTO ?", path)
        s.backups.append({'slot': d.slot, 'gen': d.gen, 'path': path, 'known': frozenset(d.known), 'step': s.step_i, 'method': method})
        s.stats['backups'] = s.stats.get('backups', 0) + 1
        return len(s.backups) - 1
    def restore(s, d, rng, bi=None):
        cands = [i for i, b in enumerate(s.backups) if b['slot'] == d.slot and b['gen'] == d.gen]
        if bi is None:
            if not cands: return False
            bi = rng.choice(cands)
        b = s.backups[bi]
        d.close()
        for ext in ('-journal', '-wal', '-shm'):
            if os.path.exists(d.path + ext): os.remove(d.path + ext)
        if rng.random() < 0.15:
            tmp = d.path + '.new'; shutil.copyfile(b['path'], tmp); os.replace(tmp, d.path); how = 'mv'
        else:
            shutil.copyfile(b['path'], d.path); how = 'cp'
        d.known = set(b['known'])
        s.log.append('  restored %s from backup %d (%s, step %d) by %s' % (d.name, bi, b['method'], b['step'], how))
        s.stats['restores'] = s.stats.get('restores', 0) + 1
        return True
    def replace_copy(s, d, src, rng):
        d.close(); src.close()
        d.gen += 1
        method = rng.choice(['cp', 'backup', 'vacuum'])
        if os.path.exists(d.path): os.remove(d.path)
        if method == 'cp': shutil.copyfile(src.path, d.path)
        elif method == 'backup': subprocess.run(['sqlite3', src.path, '.backup %s' % d.path], check=True)
        else: q(src.open(), "VACUUM INTO ?", d.path)
        d.known = set(src.known)
        d.open()
        s.log.append('  %s replaced by a %s copy of %s' % (d.name, method, src.name))
        s.stats['copies'] = s.stats.get('copies', 0) + 1
    def replace_fresh(s, d):
        d.close(); d.gen += 1
        s.fresh(d)
        s.folder_in(d); s.folder_out(d)
        s.stats['fresh_joins'] = s.stats.get('fresh_joins', 0) + 1
    def after_restore(s, d):
        # README: send a bundle to each peer, import from each a bundle made after that, then write
        s.folder_out(d)
        for e in s.devs:
            if e is not d: s.folder_sync(e)
        s.folder_sync(d)
        s.forget_gone(d)
    def forget_gone(s, d):
        live = set(x.id() for x in s.devs)
        c = d.open()
        st = j(c, "SELECT sync_status()")
        n = 0
        for p in st['peers']:
            if not p['forgotten'] and p['device_id'] not in live:
                try:
                    q(c, "SELECT sync_forget(?)", p['device_id']); n += 1
                except apsw.Error as e:
                    s.note('error', 'sync_forget on %s: %s' % (d.name, e))
        s.stats['forgets'] = s.stats.get('forgets', 0) + n
        return n

    # ---------------- steps ----------------
    def gen_steps(s, rng):
        kinds = ['write'] * 36 + ['sync'] * 22 + ['blob'] * 7 + ['backup'] * 9 + ['restore'] * 9 + ['compact_restore'] * 3 \
            + ['cycle'] * 6 + ['copy'] * 2 + ['fresh'] * 2 + ['forget'] * 4 + ['resolve'] * 5 + ['self_blob'] * 1
        return [[rng.choice(kinds), rng.getrandbits(32)] for _ in range(s.steps_n)]
    def run_step(s, st):
        kind, r = st
        rng = random.Random(r)
        d = rng.choice(s.devs)
        s.log.append('%d %s %s' % (s.step_i, kind, d.name))
        if kind == 'write':
            for _ in range(rng.randint(1, 3)): s.write(d, rng)
        elif kind == 'sync':
            s.folder_sync(d)
        elif kind == 'blob':
            e = rng.choice([x for x in s.devs if x is not d]); s.log[-1] += ' -> ' + e.name
            s.blob(d, e)
        elif kind == 'self_blob':
            s.blob(d, d)
        elif kind == 'backup':
            s.take_backup(d, rng)
        elif kind in ('restore', 'compact_restore'):
            if kind == 'compact_restore':
                s.compact(d)
            if s.restore(d, rng):
                if s.kind == 'advice':
                    s.after_restore(d)
                elif rng.random() < 0.8:
                    for _ in range(rng.randint(1, 3)): s.write(d, rng)
                if rng.random() < 0.2:
                    s.restore(d, rng)   # maybe the same backup again
                    if s.kind == 'advice': s.after_restore(d)
                    else: s.write(d, rng)
        elif kind == 'cycle':
            # backup, write and sync (others sync and compact too), then put the backup back and write on it
            bi = s.take_backup(d, rng)
            for _ in range(rng.randint(1, 3)): s.write(d, rng)
            s.folder_sync(d)
            for e in rng.sample(s.devs, rng.randint(1, 4)): s.folder_sync(e)
            if rng.random() < 0.5: s.folder_sync(d)
            if rng.random() < 0.3: s.compact(d)
            s.restore(d, rng, bi)
            if s.kind == 'advice': s.after_restore(d)
            for _ in range(rng.randint(1, 3)): s.write(d, rng)
            if rng.random() < 0.25:
                s.restore(d, rng, bi)
                if s.kind == 'advice': s.after_restore(d)
                s.write(d, rng)
        elif kind == 'copy':
            src = rng.choice([x for x in s.devs if x is not d])
            s.replace_copy(d, src, rng)
            if rng.random() < 0.5:
                s.write(d, rng)
        elif kind == 'fresh':
            s.replace_fresh(d)
        elif kind == 'forget':
            s.forget_gone(d)
        elif kind == 'resolve':
            s.resolve(d, rng)

    # ---------------- final ----------------
    def converge(s):
        s.step_i = 'final'
        for rnd in range(4):
            for d in s.devs: s.folder_sync(d)
        s.forget_gone(s.devs[0])
        for rnd in range(4):
            for d in s.devs: s.folder_sync(d, final=(rnd >= 2))
    def dump(s, d):
        c = d.open()
        tabs = {t: sorted(q(c, "SELECT %s FROM %s" % (','.join(COLS[t]), t))) for t in TABLES}
        conf = sorted(q(c, "SELECT id, table_name, pk, columns, kind FROM sync_conflicts WHERE NOT resolved"))
        confv = q(c, "SELECT table_name, pk, local_values, remote_values, kind FROM sync_conflicts WHERE NOT resolved")
        st = j(c, "SELECT sync_status()")
        return tabs, conf, confv, st
    def check(s):
        dumps = {d.name: s.dump(d) for d in s.devs}
        ref = s.devs[0].name
        for d in s.devs[1:]:
            for t in TABLES:
                if dumps[d.name][0][t] != dumps[ref][0][t]:
                    a, b = set(dumps[ref][0][t]), set(dumps[d.name][0][t])
                    s.note('apart', 'table %s differs %s vs %s: only on %s %s; only on %s %s' % (t, ref, d.name, ref, sorted(a - b)[:3], d.name, sorted(b - a)[:3]))
            if dumps[d.name][1] != dumps[ref][1]:
                a, b = set(dumps[ref][1]), set(dumps[d.name][1])
                s.note('apart', 'open conflicts differ %s vs %s: only on %s %s; only on %s %s' % (ref, d.name, ref, sorted(a - b)[:3], d.name, sorted(b - a)[:3]))
        for d in s.devs:
            st = dumps[d.name][3]
            if st['pending']['ops']:
                s.note('pending', '%s keeps %d ops pending: %s' % (d.name, st['pending']['ops'], json.dumps(st['pending']['devices'])[:300]))
            if st['clock'] != dumps[ref][3]['clock']:
                s.note('clock', '%s clock %s != %s clock %s' % (d.name, st['clock'], ref, dumps[ref][3]['clock']))
        # accounting
        for d in s.devs: s.record_lost(d)
        survivors = set()
        for d in s.devs: survivors |= d.known
        tabs = dumps[ref][0]
        rows = {t: {r[0]: dict(zip(COLS[t], r)) for r in tabs[t]} for t in TABLES}
        confs = []
        for d in s.devs: confs += dumps[d.name][2]
        by_row = {}
        for w in s.writes: by_row.setdefault((w['table'], w['pk']), []).append(w)
        missing = 0
        s.stats['accounted'] = {'in_table': 0, 'superseded': 0, 'in_conflicts': 0, 'in_lost': 0, 'gone_with_restore': 0}
        for w in s.writes:
            cols = [k for k in w['cols'] if k in ACCOUNTED[w['table']]] if w['kind'] != 'delete' else ['<delete>']
            for col in cols:
                if w['wid'] not in survivors:
                    s.stats['accounted']['gone_with_restore'] += 1; continue
                val = w['cols'].get(col)
                row = rows[w['table']].get(w['pk'])
                if col == '<delete>':
                    if row is None: s.stats['accounted']['in_table'] += 1; continue
                elif row is not None and row[col] == val:
                    s.stats['accounted']['in_table'] += 1; continue
                sup = [w2 for w2 in by_row[(w['table'], w['pk'])] if w2 is not w and w['wid'] in w2['knew']
                       and (w2['kind'] in ('delete', 'insert') or col in w2['cols'] or col == '<delete>')]
                if sup:
                    s.stats['accounted']['superseded'] += 1; continue
                pkj = json.dumps({'id': w['pk']}, separators=(',', ':'))
                inconf = False
                for (t, pk, lv, rv, kind) in confs:
                    if t != w['table'] or json.loads(pk)['id'] != w['pk']: continue
                    for side in (lv, rv):
                        sv = json.loads(side) if side is not None else None
                        if col == '<delete>':
                            if sv is None: inconf = True
                        elif isinstance(sv, dict) and sv.get(col) == val: inconf = True
                if inconf:
                    s.stats['accounted']['in_conflicts'] += 1; continue
                inlost = False
                for L in s.lost_ever:
                    if L['table'] == w['table'] and json.loads(L['pk']).get('id') == w['pk']:
                        if col == '<delete>':
                            if L['kind'] == 'delete': inlost = True
                        else:
                            v = json.loads(L['values']) if L['values'] else {}
                            if isinstance(v, dict) and v.get(col) == val: inlost = True
                if inlost:
                    s.stats['accounted']['in_lost'] += 1; continue
                missing += 1
                s.note('vanished', 'write #%d (step %s, %s) %s %s.%s=%r: not in the table (%s), not overwritten by a write that saw it, not in any conflict record, not in sync_lost' %
                       (w['wid'], w['step'], w['dev'], w['kind'], w['table'], col, val, 'row absent' if row is None else 'shows %r' % (row.get(col) if col != '<delete>' else 'row present')))
        return missing

def run(seed, kind, steps_n, steps=None, keep=False, quiet=False):
    root = os.path.join(BASE, '%s_%s' % (kind, seed))
    shutil.rmtree(root, ignore_errors=True); os.makedirs(root)
    f = Fleet(seed, kind, steps_n, root)
    rng = random.Random(seed)
    f.setup(rng)
    if steps is None:
        steps = f.gen_steps(rng)
    json.dump({'seed': seed, 'kind': kind, 'steps': steps, 'modes': [d.mode for d in f.devs]}, open(os.path.join(root, 'steps.json'), 'w'))
    crashed = None
    try:
        for i, st in enumerate(steps):
            f.step_i = i
            f.run_step(st)
        f.converge()
        f.check()
    except Exception as e:
        crashed = traceback.format_exc()
        f.note('harness-crash', crashed.strip().splitlines()[-1])
    for d in f.devs: d.close()
    out = {'seed': seed, 'kind': kind, 'steps': len(steps), 'modes': [d.mode for d in f.devs], 'stats': f.stats,
           'anomalies': f.anomalies, 'lost_listed': len(f.lost_ever)}
    json.dump(out, open(os.path.join(root, 'result.json'), 'w'), indent=1, default=str)
    open(os.path.join(root, 'log.txt'), 'w').write('\n'.join(f.log) + ('\n' + crashed if crashed else ''))
    kinds = sorted(set(a['kind'] for a in f.anomalies))
    if not quiet:
        print('seed=%s kind=%s steps=%d %s anomalies=%d %s restores=%s copies=%s fresh=%s forgets=%s comp=%s removed=%s lost=%d acc=%s' % (seed, kind, len(steps), 'FAIL' if f.anomalies else 'ok', len(f.anomalies), kinds, f.stats.get('restores',0), f.stats.get('copies',0), f.stats.get('fresh_joins',0), f.stats.get('forgets',0), f.stats.get('compactions',0), f.stats.get('removed',0), len(f.lost_ever), f.stats.get('accounted')), flush=True)
    if not f.anomalies and not keep:
        shutil.rmtree(root, ignore_errors=True)
    return f.anomalies

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('seed', nargs='?', type=int)
    ap.add_argument('--kind', default='plain')
    ap.add_argument('--steps', type=int, default=None)
    ap.add_argument('--keep', action='store_true')
    ap.add_argument('--replay')
    ap.add_argument('--verbose', action='store_true')
    a = ap.parse_args()
    if a.replay:
        sp = json.load(open(a.replay))
        an = run(sp['seed'], sp['kind'], len(sp['steps']), steps=sp['steps'], keep=a.keep)
    else:
        n = a.steps or random.Random(a.seed * 7 + 1).randint(40, 80)
        an = run(a.seed, a.kind, n, keep=a.keep)
    if a.verbose or True:
        for x in an[:25]:
            print('   [%s] step %s: %s' % (x['kind'], x['step'], x['msg'][:400]))
    sys.exit(1 if an else 0)
