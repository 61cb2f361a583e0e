# Randomized small schedules for sqlite-sync (helper 58). Three devices a, b, c as files under a
# work dir; every step opens a fresh apsw connection, loads the extension, does its step, closes.
# A schedule is a list of concrete steps (JSON), so it can be replayed and shrunk.
#
#   python3 sim.py gen MODE NPB SEED      # MODE direct|folder, NPB 1|2: run one random schedule
#   python3 sim.py replay trace.json      # replay a saved concrete trace
import apsw, json, os, re, random, shutil, sys, time

LIB = os.environ.get('LIB', '/tmp/h58/sync0')
TOK = re.compile(r'W\d{5}')
DEVS = 'abc'


def pairs():
    return [(s, d) for s in DEVS for d in DEVS if s != d]


class Sim:
    def __init__(self, work, mode='direct', scan=True, verbose=False):
        self.D, self.mode, self.scan_on, self.verbose = work, mode, scan, verbose
        self.folder = f'{work}/folder'
        self.trace, self.errors, self.log = [], [], []
        self.writes = {}          # tok -> {dev, kind, pk, seen:set, step}
        self.holds = {k: {} for k in DEVS}   # tok -> where (table/log/conf/lost)
        self.lose = {}            # key -> [(device, step index, step kind, where it was)] when a device stopped holding it
        self.held_ever = {}       # key -> devices that held it at some scan
        self.nbundle = 0
        self.lost_counts = 0
        self.rng = random.Random(0)

    # --- connections
    def conn(self, k, ro=False):
        p = f'{self.D}/{k}.db'
        if ro:
            c = apsw.Connection(p, flags=apsw.SQLITE_OPEN_READONLY)
        else:
            c = apsw.Connection(p)
        c.enable_load_extension(True); c.load_extension(LIB)
        return c

    def one(self, k, sql, *a, ro=False):
        c = self.conn(k, ro)
        try:
            r = c.execute(sql, a).fetchall()
        finally:
            c.close()
        return r[0][0] if r else None

    def setup(self):
        shutil.rmtree(self.D, ignore_errors=True); os.makedirs(self.D); os.makedirs(self.folder)
        for k in DEVS:
            c = self.conn(k); c.execute("SELECT sync_init()").fetchall()
            c.execute("CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)")
            c.execute("SELECT sync_enable('t')").fetchall(); c.close()

    # --- scanning (read-only connections): which tokens a device holds, and where
    def scan(self, k):
        """keys a device holds: value tokens, and 'D:<pk>' for a delete of that row; with where."""
        c = self.conn(k, ro=True)
        h = {}
        try:
            for (v,) in c.execute("SELECT v FROM t"):
                for x in TOK.findall(str(v)): h.setdefault(x, 'table')
            for pk, l, r in c.execute("SELECT pk, local_values, remote_values FROM sync_conflicts WHERE NOT resolved"):
                for x in TOK.findall(str(l) + ' ' + str(r)): h.setdefault(x, 'conflict')
                if 'null' in (l, r): h.setdefault('D:' + json.loads(pk)['id'], 'conflict')
            for pk, kind, v in c.execute("SELECT pk, kind, cell_values FROM sync_lost"):
                for x in TOK.findall(str(v)): h.setdefault(x, 'lost')
                if kind == 'delete': h.setdefault('D:' + json.loads(pk)['id'], 'lost')
            for tb, kind, pk, v in c.execute('SELECT "table", kind, pk, "values" FROM sync_log'):
                for x in TOK.findall(str(v)): h.setdefault(x, 'log')
                if tb == 't' and kind == 'delete': h.setdefault('D:' + json.loads(pk)['id'], 'log')
        finally:
            c.close()
        return h

    def rescan(self, ks, idx, st):
        if not self.scan_on: return
        for k in ks:
            old = self.holds[k]
            new = self.holds[k] = self.scan(k)
            for x in new:
                self.held_ever.setdefault(x, set()).add(k)
            for x in set(old) - set(new):
                self.lose.setdefault(x, []).append((k, idx, st[0], old[x]))

    # --- steps
    def bpath(self):
        self.nbundle += 1
        return f'{self.D}/b{self.nbundle}.bundle'

    def run_step(self, st):
        idx = len(self.trace); self.trace.append(st)
        t = st[0]; res = None; changed = []
        try:
            if t == 'w':
                _, k, kind, pk, tok = st
                c = self.conn(k)
                try:
                    rows = [r[0] for r in c.execute("SELECT id FROM t ORDER BY 1")]
                    if kind != 'ins' and pk is None:
                        if not rows: kind = 'ins'
                        else: pk = self.rng.choice(rows)
                    if kind == 'ins':
                        pk = 'R' + tok
                    st[2], st[3] = kind, pk
                    seen = set(); seen_null = False
                    if kind != 'ins':
                        for (v,) in c.execute("SELECT v FROM t WHERE id=?", (pk,)):
                            seen |= set(TOK.findall(str(v)))
                        for (v,) in c.execute("SELECT local_values || ' ' || remote_values FROM sync_conflicts WHERE NOT resolved AND pk=?", (json.dumps({'id': pk}, separators=(',', ':')),)):
                            seen |= set(TOK.findall(str(v)))
                            if 'null' in str(v).split(' '): seen_null = True
                    if kind == 'ins':
                        c.execute("INSERT INTO t VALUES (?, ?)", (pk, tok))
                    elif kind == 'upd':
                        c.execute("UPDATE t SET v=? WHERE id=?", (tok, pk))
                    else:
                        c.execute("DELETE FROM t WHERE id=?", (pk,))
                    res = c.changes()
                finally:
                    c.close()
                self.writes[tok] = dict(dev=k, kind=kind, pk=pk, seen=seen, seen_null=seen_null, step=idx, changes=res)
                changed = [k]
            elif t == 'x':
                _, s, d = st
                p = self.bpath()
                did = self.one(d, "SELECT sync_device_id()")
                self.one(s, "SELECT sync_bundle_out(?, ?)", did, p)
                r = json.loads(self.one(d, "SELECT sync_bundle_in(?)", p))
                os.remove(p)
                res = {x: r.get(x) for x in ('applied_count', 'conflict_count', 'lost_count', 'discarded_count', 'pending_count')}
                self.lost_counts += r.get('lost_count') or 0
                changed = [d]
            elif t == 'fi':
                _, k = st
                r = json.loads(self.one(k, "SELECT sync_folder_in(?)", self.folder))
                res = {x: r.get(x) for x in ('imported', 'applied_count', 'conflict_count', 'lost_count', 'discarded_count', 'pending_count', 'skipped')}
                if r.get('skipped'):
                    self.errors.append((idx, st, 'skipped', r['skipped']))
                self.lost_counts += r.get('lost_count') or 0
                changed = [k]
            elif t == 'fo':
                _, k = st
                r = json.loads(self.one(k, "SELECT sync_folder_out(?)", self.folder))
                res = {'ops': r.get('ops'), 'path': os.path.basename(r['path']) if r.get('path') else None}
            elif t == 'c':
                res = json.loads(self.one(st[1], "SELECT sync_compact()"))
                changed = [st[1]]
            elif t == 'bk':
                _, k, name = st
                c = self.conn(k); c.execute(f"VACUUM INTO '{self.D}/{name}'"); c.close()
            elif t == 'pb':
                _, k, name = st
                with open(f'{self.D}/{name}', 'rb') as f, open(f'{self.D}/{k}.db', 'r+b') as g:
                    g.write(f.read()); g.truncate()
                changed = [k]
            elif t == 'fork':
                res = self.one(st[1], "SELECT sync_fork()")
            elif t == 'forget':
                res = self.forget_stale()
                changed = list(DEVS)
            else:
                raise ValueError(st)
        except Exception as e:
            self.errors.append((idx, st, type(e).__name__, str(e)))
            res = f'ERROR {type(e).__name__}: {e}'
        self.log.append((idx, st, res))
        if self.verbose: print(idx, st, res)
        self.rescan(changed, idx, st)
        return res

    def forget_stale(self):
        live = {self.one(k, "SELECT sync_device_id()") for k in DEVS}
        done = []
        for k in DEVS:
            peers = json.loads(self.one(k, "SELECT sync_status() -> '$.peers'") or '[]')
            for p in peers:
                i = p['device_id']
                if i in live or p.get('forgotten'): continue
                try:
                    r = json.loads(self.one(k, "SELECT sync_forget(?)", i))
                    done.append((k, i[:8], r.get('new')))
                except Exception as e:
                    done.append((k, i[:8], 'ERROR ' + str(e)))
        return done

    # --- final state and check
    def state(self, k):
        c = self.conn(k, ro=True)
        try:
            s = dict(
                rows=c.execute("SELECT * FROM t ORDER BY 1").fetchall(),
                clock=json.loads(c.execute("SELECT sync_clock()").fetchall()[0][0]),
                conflicts=sorted(
                    (pk, tuple(sorted((json.dumps(json.loads(l), sort_keys=True), json.dumps(json.loads(r), sort_keys=True)))))
                    for pk, l, r in c.execute("SELECT pk, local_values, remote_values FROM sync_conflicts WHERE NOT resolved")),
                pending=c.execute("SELECT sync_status() -> '$.pending.ops'").fetchall()[0][0],
                lost=c.execute("SELECT device, seq, pk, kind, cell_values, certain FROM sync_lost").fetchall(),
                device=c.execute("SELECT sync_device_id()").fetchall()[0][0],
                former=c.execute("SELECT sync_status() -> '$.former_ids'").fetchall()[0][0],
            )
        finally:
            c.close()
        return s

    def check(self):
        S = {k: self.state(k) for k in DEVS}
        diff = []
        for key in ('rows', 'clock', 'conflicts'):
            vals = [S[k][key] for k in DEVS]
            if not all(v == vals[0] for v in vals):
                diff.append(key)
        if any(int(S[k]['pending'] or 0) for k in DEVS): diff.append('pending')
        errs = [e for e in self.errors]
        if errs: diff.append('errors')
        return S, diff

    def losses(self, S):
        """Writes in no device's table, open conflict or sync_lost, and not overwritten by a write
        that saw them (a write made while the row showed them, or while an open conflict listed them)."""
        present = set()
        rowsets = {k: {r[0] for r in S[k]['rows']} for k in DEVS}
        for k in DEVS:
            for r in S[k]['rows']: present |= set(TOK.findall(str(r[1])))
            for pk, sides in S[k]['conflicts']:
                for sd in sides: present |= set(TOK.findall(sd))
            for l in S[k]['lost']: present |= set(TOK.findall(str(l[4])))
        overwritten = {}
        for tok, w in self.writes.items():
            for x in w['seen']:
                overwritten.setdefault(x, []).append(tok)
        out = []
        for tok, w in self.writes.items():
            if w['changes'] == 0 and w['kind'] != 'ins': continue
            if w['kind'] == 'del':
                key = 'D:' + w['pk']
                pkj = json.dumps({'id': w['pk']}, separators=(',', ':'))
                ok = any(w['pk'] not in rowsets[k] for k in DEVS) \
                    or any(pk == pkj and any(sd == 'null' for sd in sides) for k in DEVS for pk, sides in S[k]['conflicts']) \
                    or any(l[2] == pkj and l[3] == 'delete' for k in DEVS for l in S[k]['lost']) \
                    or any(w2['pk'] == w['pk'] and w2['step'] > w['step'] and w2['seen_null'] for w2 in self.writes.values())
            else:
                key = tok
                ok = tok in present or tok in overwritten
            if ok: continue
            ev = self.lose.get(key, [])
            if not self.scan_on: cause = 'not-tracked'
            elif not ev: cause = 'never-lost-by-a-scan'
            elif ev[-1][2] == 'pb' and ev[-1][3] == 'lost': cause = 'listing-erased-by-putback'
            elif all(e[2] == 'pb' for e in ev): cause = 'destroyed-by-putback'
            else: cause = 'dropped-at-' + ','.join(f'{e[0]}@{e[1]}:{e[2]}' for e in ev if e[2] != 'pb')
            out.append(dict(tok=tok, dev=w['dev'], kind=w['kind'], pk=w['pk'], step=w['step'], cause=cause,
                            lose=ev, held=sorted(self.held_ever.get(key, []))))
        return out


# ---------------------------------------------------------------- random schedules
def plan_putbacks(rng, npb):
    plans = []
    bk = {}
    for i in range(npb):
        k = rng.choice(DEVS)
        prev = plans[-1]['pb'] if plans else None
        if k in bk:
            br = bk[k]
        else:
            br = (rng.choice([3, 5]), rng.randrange(4)); bk[k] = br
        lo = br[0] + 1
        if prev: lo = max(lo, prev[0] + (1 if plans[-1]['dev'] == k else 0))
        lo = min(lo, 11)
        pb = (rng.randint(lo, 11), rng.randrange(4))
        plans.append(dict(dev=k, bk=br, pb=pb, name=f'{k}_backup.db'))
    return plans


def generate_and_run(sim, seed, npb, fork=False):
    rng = random.Random(seed); sim.rng = random.Random(seed * 7919 + 1)
    plans = plan_putbacks(rng, npb)
    sim.plans = plans
    n = [0]

    def tok():
        n[0] += 1; return f'W{n[0]:05d}'

    def at(r, pos):
        for p in plans:
            if p['bk'] == (r, pos) and not any(q['bk'] == p['bk'] and q['dev'] == p['dev'] and q is not p and plans.index(q) < plans.index(p) for q in plans):
                sim.run_step(['bk', p['dev'], p['name']])
        for p in plans:
            if p['pb'] == (r, pos):
                sim.run_step(['pb', p['dev'], p['name']])
                if fork: sim.run_step(['fork', p['dev']])
                sim.run_step(['w', p['dev'], 'ins', None, tok()])
                sim.run_step(['w', p['dev'], 'upd', None, tok()])

    for r in range(1, 14):
        at(r, 0)
        for k in DEVS:
            for _ in range(rng.randint(0, 3)):
                kind = rng.choices(['ins', 'upd', 'del'], [4, 4, 2])[0]
                sim.run_step(['w', k, kind, None, tok()])
        at(r, 1)
        for _ in range(rng.randint(2, 5)):
            if sim.mode == 'direct':
                s, d = rng.sample(DEVS, 2)
                sim.run_step(['x', s, d])
            else:
                k = rng.choice(DEVS)
                sim.run_step(['fi', k]); sim.run_step(['fo', k])
        at(r, 2)
        for k in DEVS:
            if rng.random() < 0.8: sim.run_step(['c', k])
        at(r, 3)
    end_phase(sim)


def all_pairs(sim):
    if sim.mode == 'direct':
        for s, d in pairs(): sim.run_step(['x', s, d])
    else:
        for k in DEVS: sim.run_step(['fi', k]); sim.run_step(['fo', k])


def end_phase(sim):
    for _ in range(2): all_pairs(sim)
    sim.run_step(['forget'])
    for _ in range(2):
        all_pairs(sim)
        for k in DEVS: sim.run_step(['c', k])
    for _ in range(3): all_pairs(sim)


def summarize(sim, extra_passes=3):
    S, diff = sim.check()
    out = dict(diff=diff, errors=[[e[0], e[1], e[2], str(e[3])[:300]] for e in sim.errors])
    if diff and extra_passes:
        for _ in range(extra_passes): all_pairs(sim)
        S2, diff2 = sim.check()
        out['diff_after_more_passes'] = diff2
        S = S2
    out['losses'] = sim.losses(S)
    out['state'] = {k: dict(rows=S[k]['rows'], clock=S[k]['clock'], conflicts=S[k]['conflicts'], pending=S[k]['pending'],
                            lost=S[k]['lost'], device=S[k]['device'], former=S[k]['former']) for k in DEVS}
    out['lost_count_sum'] = sim.lost_counts
    return out


def main():
    cmd = sys.argv[1]
    if cmd == 'gen':
        mode, npb, seed = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        fork = os.environ.get('FORK') == '1'
        work = os.environ.get('WORK', f'/tmp/h58/work/{mode}{npb}')
        sim = Sim(work, mode, scan=os.environ.get('SCAN', '1') == '1', verbose=os.environ.get('V') == '1')
        sim.setup()
        t0 = time.time()
        generate_and_run(sim, seed, npb, fork)
        out = summarize(sim)
        out.update(mode=mode, npb=npb, seed=seed, plans=sim.plans, secs=round(time.time() - t0, 1), trace=sim.trace,
                   log=[[i, s, r] for i, s, r in sim.log])
        os.makedirs('/tmp/h58/runs', exist_ok=True)
        fn = f'/tmp/h58/runs/{mode}{npb}{"f" if fork else ""}_{seed}.json'
        with open(fn, 'w') as f: json.dump(out, f, indent=0, default=list)
        apart = bool(out['diff'])
        print(json.dumps(dict(mode=mode, npb=npb, seed=seed, diff=out['diff'], diff_after=out.get('diff_after_more_passes'),
                              losses=[(l['tok'], l['dev'], l['kind'], l.get('cause')) for l in out['losses']],
                              lost_sum=out['lost_count_sum'], nerr=len(out['errors']), secs=out['secs'],
                              plans=[(p['dev'], p['bk'], p['pb']) for p in sim.plans])))
    elif cmd == 'replay':
        tr = json.load(open(sys.argv[2]))
        trace = tr['trace'] if isinstance(tr, dict) else tr
        mode = tr.get('mode', 'direct') if isinstance(tr, dict) else os.environ.get('MODE', 'direct')
        sim = Sim(os.environ.get('WORK', '/tmp/h58/work/replay'), mode, scan=os.environ.get('SCAN', '1') == '1', verbose=os.environ.get('V') == '1')
        sim.setup()
        for st in trace: sim.run_step(list(st))
        out = summarize(sim, extra_passes=0)
        print(json.dumps(dict(diff=out['diff'], losses=out['losses'], errors=out['errors']), default=list))
        for k in DEVS:
            s = out['state'][k]
            print(k, s['device'][:8], 'former', s['former'], '\n  rows', s['rows'], '\n  clock', s['clock'],
                  '\n  conflicts', s['conflicts'], '\n  pending', s['pending'], 'lost', s['lost'])


if __name__ == '__main__':
    main()
