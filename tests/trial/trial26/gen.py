#!/tmp/venv/bin/python
"""Random-schedule tester for sqlite-sync.

  gen.py SEED [SEED2]            run seeds, print one JSON line each
  gen.py --batch MINUTES OUT     run seeds 1.. until MINUTES elapsed, results to OUT (jsonl)
  gen.py --summary OUT           summarise a results file

A schedule is generated first (a list of concrete actions on device *names*), then executed,
so a schedule can be shrunk by dropping actions (shrink.py).
"""
import apsw, json, os, random, re, shutil, sys, time

EXT = os.environ.get('EXT', 'dist/sync0')
BASE = os.path.join(os.environ.get('WORK', '/tmp/t26'), 'runs')
KEYS = ['k%d' % i for i in range(8)]


# ---------------------------------------------------------------- generation
def gen_ops(rng, tag, n=None):
    ops = []
    for _ in range(n or rng.randint(1, 3)):
        k = rng.choice(KEYS)
        r = rng.random()
        if r < 0.45:
            ops.append(('ins', k, '%s.%d' % (tag, rng.randint(0, 999))))
        elif r < 0.8:
            ops.append(('upd', k, '%s.%d' % (tag, rng.randint(0, 999))))
        else:
            ops.append(('del', k))
    return ops


def generate(seed, steps=40):
    rng = random.Random(seed)
    cfg = {}
    m = rng.choice(['every', 'auto1', 'auto2', 'auto5', 'every', 'auto1', 'auto2', 'auto5', 'off'])
    cfg['compaction'] = m
    cfg['backups'] = rng.random() < 0.7
    cfg['copies'] = rng.random() < 0.6
    cfg['newdevs'] = rng.random() < 0.5
    cfg['forget'] = rng.random() < 0.5
    n = rng.randint(3, 5)
    names = ['d%d' % i for i in range(n)]
    acts = [('create', x) for x in names]
    backups = {}   # backup name -> device name
    nb = 0
    for i in range(steps):
        r = rng.random()
        live = list(names)
        if r < 0.36:
            d = rng.choice(live)
            acts.append(('write', d, rng.random() < 0.8, gen_ops(rng, '%s@%d' % (d, i))))
        elif r < 0.62 or len(live) < 2:
            a, b = rng.sample(live, 2)
            acts.append(('sync', a, b, rng.choice(['ab', 'ba', 'both', 'both'])))
        elif r < 0.70:
            acts.append(('hub', rng.choice(live)))
        elif r < 0.80 and cfg['backups']:
            d = rng.choice(live)
            if rng.random() < 0.5 or not [x for x, y in backups.items() if y == d]:
                bn = 'bk%d' % nb; nb += 1
                backups[bn] = d
                acts.append(('backup', d, bn))
            else:
                bn = rng.choice([x for x, y in backups.items() if y == d])
                if rng.random() < 0.5:
                    acts.append(('restore', d, bn, 'write', rng.random() < 0.6,
                                 gen_ops(rng, '%s@%dR' % (d, i))))
                else:
                    acts.append(('restore', d, bn, 'sync', None, None))
        elif r < 0.86 and cfg['copies'] and len(names) < 6:
            d = rng.choice(live)
            nn = 'd%d' % len(names); names.append(nn)
            acts.append(('copy', d, nn, rng.random() < 0.5, gen_ops(rng, '%s@%dC' % (nn, i))))
        elif r < 0.91 and cfg['newdevs'] and len(names) < 6:
            d = rng.choice(live)
            nn = 'd%d' % len(names); names.append(nn)
            acts.append(('newdev', d, nn))
        elif cfg['forget']:
            acts.append(('forget', rng.choice(live)))
        else:
            d = rng.choice(live)
            acts.append(('write', d, True, gen_ops(rng, '%s@%d' % (d, i))))
    return cfg, acts


# ---------------------------------------------------------------- execution
HEX = re.compile(r'[0-9a-f]{32}')


def norm(msg):
    s = HEX.sub('<id>', str(msg))
    s = re.sub(r'"/[^"]*"', '"<path>"', s)
    s = re.sub(r'\d+', 'N', s)
    return s[:220]


class Run:
    def __init__(self, seed, cfg, acts, wd=None, verbose=False):
        self.seed, self.cfg, self.acts = seed, cfg, acts
        self.wd = wd or os.path.join(BASE, 's%d' % seed)
        shutil.rmtree(self.wd, ignore_errors=True)
        os.makedirs(self.wd)
        self.devs = []          # names in existence (order of creation)
        self.ids = {}           # name -> current device id
        self.errors = []        # (phase, step, kind, msg)
        self.notes = []
        self.verbose = verbose
        self.phase = 'steps'
        self.step = -1
        self.used = set()       # features that actually ran
        self.floors = {'steps': 0, 'final': 0}   # compaction points written

    def path(self, n):
        return os.path.join(self.wd, n + '.db')

    def conn(self, n, ext=True):
        c = apsw.Connection(self.path(n))
        c.setbusytimeout(5000)
        c.execute('PRAGMA synchronous=OFF')   # speed only: no crash is simulated
        if ext:
            c.enable_load_extension(True)
            c.load_extension(EXT)
        return c

    def close(self, n, c, ext=True):
        if ext:
            try:
                self.ids[n] = c.execute('SELECT sync_device_id()').fetchall()[0][0]
            except Exception:
                pass
        c.close()

    def q1(self, c, sql, *a):
        return c.execute(sql, a).fetchall()[0][0]

    def do_ops(self, c, ops):
        for o in ops:
            if o[0] == 'ins':
                c.execute('INSERT INTO t VALUES(?,?) ON CONFLICT(id) DO UPDATE SET v=excluded.v', (o[1], o[2]))
            elif o[0] == 'upd':
                c.execute('UPDATE t SET v=? WHERE id=?', (o[2], o[1]))
            else:
                c.execute('DELETE FROM t WHERE id=?', (o[1],))

    def err(self, kind, e):
        self.errors.append((self.phase, self.step, kind, str(e)))
        if self.verbose:
            print('   ERROR', kind, e)

    def create(self, n):
        c = self.conn(n)
        self.q1(c, 'SELECT sync_init()')
        c.execute('CREATE TABLE IF NOT EXISTS t(id TEXT PRIMARY KEY, v TEXT)')
        self.q1(c, "SELECT sync_enable('t')")
        m = self.cfg['compaction']
        if m.startswith('auto'):
            c.execute("INSERT OR REPLACE INTO _sync_state(name, value) VALUES ('compact_every', ?)", (int(m[4:]),))
        elif m == 'every':
            c.execute("INSERT OR REPLACE INTO _sync_state(name, value) VALUES ('compact_every', 0)")
        else:  # off: the default (10,000) is never reached here; keep it so
            pass
        self.close(n, c)
        self.devs.append(n)

    def export(self, a, b):
        """bundle from a for b (b's current id)"""
        if b not in self.ids:
            c = self.conn(b); self.close(b, c)
        c = self.conn(a)
        try:
            blob = self.q1(c, 'SELECT sync_bundle_out(?)', self.ids[b])
        except apsw.Error as e:
            self.err('export', e); blob = None
        self.close(a, c)
        return blob

    def imp(self, b, blob):
        c = self.conn(b)
        try:
            r = json.loads(self.q1(c, 'SELECT sync_bundle_in(?)', blob))
            if (r.get('compacted') or {}).get('floor') is not None:
                self.floors[self.phase] += 1
            if self.verbose:
                print('   in', b, {k: r.get(k) for k in ('applied_count', 'pending_count', 'discarded_count', 'conflict_count')})
        except apsw.Error as e:
            if os.environ.get('FORK_ON_FORGOTTEN') == '1' and 'holds this device as forgotten' in str(e):
                # README: SELECT sync_fork(), then import again
                self.notes.append('forked'); self.used.add('fork_retry')
                self.q1(c, 'SELECT sync_fork()')
                try:
                    self.q1(c, 'SELECT sync_bundle_in(?)', blob)
                except apsw.Error as e2:
                    self.err('import', e2)
            else:
                self.err('import', e)
        if self.cfg['compaction'] == 'every':
            try:
                if json.loads(self.q1(c, 'SELECT sync_compact()')).get('floor') is not None:
                    self.floors[self.phase] += 1
            except apsw.Error as e:
                self.err('compact', e)
        self.close(b, c)

    def one_way(self, a, b):
        blob = self.export(a, b)
        if blob is not None:
            self.imp(b, blob)

    def sync(self, a, b, order='both'):
        if order == 'ab':
            self.one_way(a, b)
        elif order == 'ba':
            self.one_way(b, a)
        else:
            self.one_way(a, b); self.one_way(b, a)

    def forget_former(self, n):
        """forget the former ids listed on n that no current device has"""
        c = self.conn(n)
        st = json.loads(self.q1(c, 'SELECT sync_status()'))
        cur = set(self.ids[x] for x in self.devs if x in self.ids)
        cur.add(st['device_id'])
        done = []
        for f in st.get('former_ids') or []:
            if f in cur:
                continue
            try:
                r = json.loads(self.q1(c, 'SELECT sync_forget(?)', f))
                done.append(f[:8])
            except apsw.Error as e:
                self.err('forget', e)
        self.close(n, c)
        return done

    def act(self, a):
        k = a[0]
        if k == 'create':
            self.create(a[1]); return
        # skip actions on devices a shrunk schedule no longer makes
        if k in ('write', 'sync', 'backup', 'restore', 'copy', 'newdev', 'forget', 'hub'):
            if a[1] not in self.devs:
                return
        if k == 'sync' and a[2] not in self.devs:
            return
        if k == 'write':
            _, n, ext, ops = a
            c = self.conn(n, ext)
            self.do_ops(c, ops)
            self.close(n, c, ext)
            if not ext:
                self.used.add('noext_write')
        elif k == 'sync':
            self.sync(a[1], a[2], a[3])
        elif k == 'backup':
            shutil.copyfile(self.path(a[1]), os.path.join(self.wd, a[2] + '.bak'))
            self.used.add('backup')
        elif k == 'restore':
            _, n, bn, how, ext, ops = a
            src = os.path.join(self.wd, bn + '.bak')
            if not os.path.exists(src):
                return
            shutil.copyfile(src, self.path(n))   # same inode: written in place
            self.used.add('restore')
            if how == 'write':
                self.used.add('restore_written')
                c = self.conn(n, ext)
                self.do_ops(c, ops)
                self.close(n, c, ext)
            else:
                # README: send a bundle to each other device, then import from each
                c = self.conn(n); self.close(n, c)
                for p in self.devs:
                    if p != n:
                        self.one_way(n, p)
                for p in self.devs:
                    if p != n:
                        self.one_way(p, n)
        elif k == 'copy':
            _, src, nn, ext, ops = a
            shutil.copyfile(self.path(src), self.path(nn))  # new inode
            self.devs.append(nn)
            self.used.add('copy' if ext else 'copy_noext')
            c = self.conn(nn, ext)
            self.do_ops(c, ops)
            self.close(nn, c, ext)
        elif k == 'newdev':
            _, src, nn = a
            c = self.conn(src)
            try:
                blob = self.q1(c, 'SELECT sync_bundle_out(NULL)')
            except apsw.Error as e:
                self.err('export', e); blob = None
            self.close(src, c)
            self.create(nn)
            self.used.add('newdev')
            if blob is not None:
                self.imp(nn, blob)
        elif k == 'hub':   # one device syncs with every other, both ways
            for p in list(self.devs):
                if p != a[1]:
                    self.sync(a[1], p, 'both')
        elif k == 'forget':
            for n in list(self.devs):
                if self.forget_former(n):
                    self.used.add('forget')

    def execute(self):
        for i, a in enumerate(self.acts):
            self.step = i
            if self.verbose:
                print(i, a)
            try:
                self.act(a)
            except apsw.Error as e:
                self.err('other', e)
        self.finish()
        return self.check()

    def round(self):
        for a in self.devs:
            for b in self.devs:
                if a != b:
                    self.one_way(a, b)

    def finish(self):
        self.phase = 'final'
        self.step = 'r1'; self.round()
        self.step = 'r2'; self.round()
        self.step = 'forget'
        for n in self.devs:
            self.forget_former(n)
        for r in range(4):
            self.step = 'r%d' % (r + 3); self.round()

    def check(self):
        res = {'seed': self.seed, 'cfg': self.cfg, 'used': sorted(self.used), 'devices': len(self.devs)}
        tables, confl, pend, lost, peers = {}, {}, {}, {}, {}
        for n in self.devs:
            c = self.conn(n)
            tables[n] = c.execute('SELECT id, v FROM t ORDER BY id').fetchall()
            confl[n] = sorted(set(c.execute('SELECT kind, pk FROM sync_conflicts WHERE resolved = 0').fetchall()))
            st = json.loads(self.q1(c, 'SELECT sync_status()'))
            pend[n] = st['pending']['ops']
            lost[n] = c.execute('SELECT device, seq, table_name, pk, kind, cell_values, certain FROM sync_lost').fetchall()
            self.close(n, c)
        kinds = []
        errs = [e for e in self.errors]
        if errs:
            for e in errs:
                kinds.append('%s error: %s' % (e[2], norm(e[3])))
        if any(pend.values()):
            kinds.append('pending')
        if len(set(map(repr, tables.values()))) > 1:
            kinds.append('tables differ')
        if len(set(map(repr, confl.values()))) > 1:
            kinds.append('conflicts differ')
        # dedupe, keep order
        seen = []
        for k in kinds:
            if k not in seen:
                seen.append(k)
        res['kinds'] = seen
        res['ok'] = not seen
        res['errors'] = [(p, s, k, m[:300]) for p, s, k, m in self.errors[:20]]
        res['n_errors'] = len(self.errors)
        res['floors'] = self.floors
        res['final_errors'] = sum(1 for e in self.errors if e[0] == 'final')
        res['pending'] = pend
        res['lost'] = {n: len(v) for n, v in lost.items()}
        res['open_conflicts'] = {n: len(v) for n, v in confl.items()}
        if len(set(map(repr, tables.values()))) > 1:
            res['tables'] = {n: tables[n] for n in self.devs}
        if len(set(map(repr, confl.values()))) > 1:
            res['conflicts'] = confl
        self.tables, self.confl, self.lostrows = tables, confl, lost
        return res


def run_seed(seed, verbose=False, keep=False):
    cfg, acts = generate(seed)
    r = Run(seed, cfg, acts, verbose=verbose)
    t0 = time.time()
    res = r.execute()
    res['secs'] = round(time.time() - t0, 2)
    res['steps'] = len(acts)
    if res['ok'] and not keep:
        shutil.rmtree(r.wd, ignore_errors=True)
    return res


def mode_of(res):
    u = set(res['used'])
    tags = [res['cfg']['compaction']]
    if 'restore_written' in u: tags.append('restore+write')
    elif 'restore' in u: tags.append('restore(synced)')
    if 'copy_noext' in u: tags.append('copy-noext')
    elif 'copy' in u: tags.append('copy-ext')
    if 'newdev' in u: tags.append('newdev')
    if 'forget' in u: tags.append('forget')
    return tags


def summary(path):
    from collections import Counter, defaultdict
    rs = [json.loads(l) for l in open(path)]
    ok = [r for r in rs if r['ok']]
    bad = [r for r in rs if not r['ok']]
    print('seeds run: %d (%d..%d), converged: %d, failed: %d, total run time %.0fs'
          % (len(rs), min(r['seed'] for r in rs), max(r['seed'] for r in rs), len(ok), len(bad),
             sum(r['secs'] for r in rs)))
    print('\nby compaction mode (run / failed):')
    for m in ['every', 'auto1', 'auto2', 'auto5', 'off']:
        a = [r for r in rs if r['cfg']['compaction'] == m]
        print('  %-6s %4d / %d' % (m, len(a), sum(1 for r in a if not r['ok'])))
    print('\nby feature used (run / failed):')
    for f in ['restore', 'restore_written', 'copy', 'copy_noext', 'newdev', 'forget', 'noext_write']:
        a = [r for r in rs if f in r['used']]
        print('  %-16s %4d / %d' % (f, len(a), sum(1 for r in a if not r['ok'])))
    a = [r for r in rs if not ({'restore', 'copy', 'copy_noext'} & set(r['used']))]
    print('  %-16s %4d / %d' % ('no restore/copy', len(a), sum(1 for r in a if not r['ok'])))
    print('\nfailure kinds (a seed may have several):')
    by = defaultdict(list)
    for r in bad:
        for k in r['kinds']:
            by[k].append(r)
    for k, v in sorted(by.items(), key=lambda kv: -len(kv[1])):
        print('  %3d  %s' % (len(v), k))
        print('       seeds:', ' '.join('%d[%s]' % (r['seed'], ','.join(mode_of(r))) for r in v[:12]),
              '...' if len(v) > 12 else '')
    print('\nprimary kind x mode:')
    c = Counter()
    for r in bad:
        k = r['kinds'][0].split(':')[0]
        if k.endswith('error'):
            k = r['kinds'][0][:60]
        c[(k, r['cfg']['compaction'])] += 1
    for (k, m), v in sorted(c.items()):
        print('  %3d  %-6s %s' % (v, m, k))
    lost = [r for r in rs if any(r['lost'].values())]
    print('\nseeds with sync_lost rows: %d (of them converged: %d); lists differ per device in %d'
          % (len(lost), sum(1 for r in lost if r['ok']), sum(1 for r in lost if len(set(r['lost'].values())) > 1)))


if __name__ == '__main__':
    if sys.argv[1] == '--batch':
        minutes, out = float(sys.argv[2]), sys.argv[3]
        start = int(sys.argv[4]) if len(sys.argv) > 4 else 1
        t0 = time.time(); s = start
        with open(out, 'a') as f:
            while time.time() - t0 < minutes * 60:
                try:
                    res = run_seed(s)
                except Exception as e:
                    res = {'seed': s, 'ok': False, 'kinds': ['crash: ' + norm(e)], 'cfg': generate(s)[0],
                           'used': [], 'secs': 0, 'lost': {}, 'pending': {}}
                f.write(json.dumps(res) + '\n'); f.flush()
                s += 1
    elif sys.argv[1] == '--summary':
        summary(sys.argv[2])
    else:
        a = int(sys.argv[1]); b = int(sys.argv[2]) if len(sys.argv) > 2 else a
        for s in range(a, b + 1):
            res = run_seed(s, verbose=os.environ.get('V') == '1', keep=True)
            print(json.dumps({k: v for k, v in res.items() if k not in ('tables',)}))
