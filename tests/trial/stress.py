#!/usr/bin/env python3
"""Random-schedule stress test for the sqlite-sync extension (trial 11).

Usage (see tests/trial/README.md):
  stress.py run SEED [--steps N]            one seed, prints a JSON verdict as last line
  stress.py replay FILE.json                 replay a saved action list
  stress.py batch FIRST LAST [--budget SEC]  run seeds in subprocesses (one at a time)
  stress.py shrink FILE.json CLASS [--budget SEC] [--out FILE]
  stress.py save SEED FILE.json [--steps N]  write the generated action list of a seed

Each run happens in a fresh process with an LD_PRELOAD shim (tools/detrand.so) that makes
getrandom() deterministic, so device ids, bundle ids (and hence Lamport tie-breaks) repeat
for the same action list.  The process re-executes itself with that environment.
"""
import json, os, sys, random, shutil, subprocess, time, re, copy, traceback

HERE = os.path.dirname(os.path.abspath(__file__))
EXT = os.environ.get("EXT", "/tmp/newlib/sync0")
SHIM = os.path.join(HERE, "tools", "detrand.so")
PY = os.environ.get("PY", sys.executable)

TABLES = {
    "items": ("id", ["id", "name", "n"]),   # TEXT PK, UNIQUE name
    "nums": ("id", ["id", "v", "w"]),       # INTEGER PK
}
SCHEMA = [
    "CREATE TABLE IF NOT EXISTS items(id TEXT PRIMARY KEY, name TEXT UNIQUE, n INTEGER)",
    "CREATE TABLE IF NOT EXISTS nums(id INTEGER PRIMARY KEY, v TEXT, w INTEGER)",
]


# ---------------------------------------------------------------- schedule generation
def gen_schedule(seed, steps=None):
    rng = random.Random(seed)
    cfg = {
        "seed": seed,
        "detrand": seed,
        "ndev": rng.choice([3, 3, 4, 5]),
        "autocompact": 5 if seed % 2 == 1 else 0,        # half the seeds: compact_every 5
        "restore_sync_first": (seed // 2) % 2 == 1,      # README's advice followed or not
    }
    if steps is None:
        steps = rng.randint(150, 320)
    acts = []
    R = lambda: rng.randrange(1 << 30)
    D = lambda: rng.randrange(60)
    def write(d=None):
        k = rng.random()
        return {"a": "write", "d": D() if d is None else d, "t": rng.choice(["items", "nums"]),
                "k": "insert" if k < 0.45 else ("update" if k < 0.85 else "delete"),
                "r": R(), "r2": R()}
    while len(acts) < steps:
        x = rng.random()
        if x < 0.42:
            acts.append(write())
        elif x < 0.67:
            m = rng.random()
            acts.append({"a": "sync", "s": D(), "d": D(),
                         "mode": "now" if m < 0.7 else ("twice" if m < 0.8 else ("late" if m < 0.9 else "never")),
                         "both": rng.random() < 0.4, "null": rng.random() < 0.08})
        elif x < 0.71:
            acts.append({"a": "deliver", "r": R()})
        elif x < 0.77:
            acts.append({"a": "compact", "d": D()})
        elif x < 0.82:
            acts.append({"a": "backup", "d": D(), "m": rng.choice(["api", "vacuum", "cp"])})
        elif x < 0.86:
            d = D()
            acts.append({"a": "restore", "d": d, "r": R(), "m": "over" if rng.random() < 0.7 else "mv"})
            if cfg["restore_sync_first"]:
                acts.append({"a": "resync", "d": d})
            for _ in range(rng.randint(1, 3)):
                acts.append(write(d))
        elif x < 0.90:
            raw = rng.choice([0, 0, 1, 2])
            acts.append({"a": "copy", "d": D(), "m": rng.choice(["cp", "api", "vacuum"]),
                         "raw": [write(0) for _ in range(raw)]})
        elif x < 0.95:
            acts.append({"a": "forget", "d": D(), "r": R()})
        else:
            acts.append({"a": "resolve", "d": D(), "r": R(), "c": rng.choice(["local", "remote"])})
    return {"cfg": cfg, "actions": acts}


# ---------------------------------------------------------------- runtime
def norm_err(msg):
    m = re.sub(r"[0-9a-f]{32}", "<id>", msg)
    m = re.sub(r"[0-9a-f]{8,}", "<hex>", m)
    m = re.sub(r"\d+", "N", m)
    return m[:160]


class Dev:
    def __init__(self, slot, path):
        self.slot, self.path = slot, path
        self.conn = None
        self.id = None
        self.K = set()        # model: writes this device knows (write ids)
        self.views = {}       # model: peer device id -> frozenset K that peer's last bundle carried
        self.pend = set()     # model: deltas of bundles imported while ops were pending
        self.alive = True
        self.behind = False   # restored and not yet synced both ways with every live device since
        self.met_in, self.met_out = set(), set()


class Run:
    def __init__(self, sched, workdir, verbose=False):
        self.cfg = sched["cfg"]
        self.actions = sched["actions"]
        self.wd = workdir
        self.verbose = verbose
        self.devs = []
        self.backups = []     # dicts: slot, file, K, views, pend, id
        self.queue = []       # late bundles
        self.writes = []      # dicts
        self.errors = []      # (phase, step, action, message)
        self.expected = []    # documented refusals met (and the fix applied)
        self.log = []
        self.step = -1
        self.nfiles = 0
        self.lost_seen = []   # sync_lost rows of devices just before a backup was put back over them
        self.stats = {"floors": 0, "removed": 0, "forks": 0, "forgets": 0, "restores": 0, "copies": 0}

    # -- helpers
    def q(self, conn, sql, *args):
        return conn.execute(sql, args).fetchall()

    def q1(self, conn, sql, *args):
        r = conn.execute(sql, args).fetchall()
        return r[0][0] if r else None

    def count_compact(self, c):
        if isinstance(c, str):
            c = json.loads(c)
        if c and c.get("floor") is not None:
            self.stats["floors"] += 1
        if c:
            self.stats["removed"] += c.get("removed") or 0

    def note(self, s):
        self.log.append(f"[{self.step}] {s}")
        if self.verbose:
            print(f"[{self.step}] {s}", flush=True)

    def err(self, phase, what, e):
        msg = str(e)
        self.errors.append({"phase": phase, "step": self.step, "what": what, "msg": msg})
        self.note(f"ERROR {phase} {what}: {msg}")

    def newfile(self, stem):
        self.nfiles += 1
        return os.path.join(self.wd, f"{stem}{self.nfiles}.db")

    def open_dev(self, d):
        import apsw
        c = apsw.Connection(d.path)
        c.enable_load_extension(True)
        c.load_extension(EXT)
        c.execute("PRAGMA busy_timeout=5000")
        d.conn = c
        d.id = self.q1(c, "SELECT sync_init()")

    def refresh_id(self, d):
        d.id = self.q1(d.conn, "SELECT sync_device_id()")

    def live(self):
        return [d for d in self.devs if d.alive]

    def pick(self, i):
        lv = self.live()
        return lv[i % len(lv)]

    # -- setup
    def setup(self):
        for i in range(self.cfg["ndev"]):
            d = Dev(i, self.newfile(f"dev{i}_"))
            self.devs.append(d)
            self.open_dev(d)
            for s in SCHEMA:
                d.conn.execute(s)
            for t in TABLES:
                self.q(d.conn, "SELECT sync_enable(?)", t)
            if self.cfg["autocompact"]:
                d.conn.execute("INSERT OR REPLACE INTO _sync_state(name, value) VALUES ('compact_every', ?)",
                               (self.cfg["autocompact"],))
            self.note(f"dev{i} id={d.id[:8]}")

    # -- writes
    def do_write(self, d, conn, a, dev_id, raw=False):
        t, k, r, r2 = a["t"], a["k"], a["r"], a["r2"]
        pkcol, cols = TABLES[t]
        before = frozenset(d.K)
        clock = None if raw else json.loads(self.q1(conn, "SELECT sync_clock()"))
        if k == "insert":
            if t == "items":
                key = f"k{r % 5}" if r % 10 < 4 else f"x{r:08x}"
                vals = {"id": key, "name": None if r2 % 5 == 0 else f"n{r2 % 8}", "n": (r2 >> 4) % 100}
            else:
                key = 1 + r % 6 if r % 10 < 4 else 1000 + r
                vals = {"id": key, "v": f"v{r2 % 50}", "w": (r2 >> 4) % 100}
            try:
                conn.execute(f"INSERT INTO {t}({','.join(cols)}) VALUES (?,?,?)", tuple(vals[c] for c in cols))
            except Exception as e:
                self.note(f"dev{d.slot} local insert refused ({e.__class__.__name__}: {e})")
                return
            cells = vals
            pk = key
        else:
            rows = self.q(conn, f"SELECT {','.join(cols)} FROM {t} ORDER BY {pkcol}")
            if not rows:
                return
            row = dict(zip(cols, rows[r % len(rows)]))
            pk = row[pkcol]
            if k == "delete":
                conn.execute(f"DELETE FROM {t} WHERE {pkcol}=?", (pk,))
                if conn.changes() == 0:
                    return
                cells = None
            else:
                c1, c2 = cols[1], cols[2]
                which = r2 % 3
                newv = {}
                if which in (0, 2):
                    newv[c1] = (None if (r2 >> 3) % 6 == 0 else f"n{(r2 >> 3) % 8}") if t == "items" else f"v{(r2 >> 3) % 50}"
                if which in (1, 2):
                    newv[c2] = (r2 >> 9) % 100
                try:
                    conn.execute(f"UPDATE {t} SET {','.join(c + '=?' for c in newv)} WHERE {pkcol}=?",
                                 tuple(newv.values()) + (pk,))
                except Exception as e:
                    self.note(f"dev{d.slot} local update refused ({e})")
                    return
                cells = {c: v for c, v in newv.items() if row[c] != v or type(row[c]) != type(v)}
                if not cells:
                    return
        # the op it is, and the clock it was written over, as the library holds them: what a
        # later write saw is what the model says, or what its clock covered (`saw`)
        op = None if raw else (dev_id, json.loads(self.q1(conn, "SELECT sync_clock()")).get(dev_id))
        w = {"id": len(self.writes), "slot": d.slot, "dev": dev_id, "t": t, "pk": pk, "k": k,
             "cells": cells, "seen": before, "step": self.step, "raw": raw, "behind": d.behind or raw,
             "op": op, "clock": clock}
        self.writes.append(w)
        d.K.add(w["id"])
        self.note(f"dev{d.slot} W{w['id']} {k} {t} {pk!r} {cells}" + (f" op={op[0][:8]}:{op[1]}" if op else ""))

    # -- bundles
    def export(self, a, peer_id, phase):
        try:
            blob = self.q1(a.conn, "SELECT sync_bundle_out(?)", peer_id)
        except Exception as e:
            self.err(phase, f"export dev{a.slot}->{peer_id and peer_id[:8]}", e)
            return None
        view = frozenset() if peer_id is None else a.views.get(peer_id, frozenset())
        Ka = frozenset(a.K)
        return {"blob": blob, "src": a.slot, "K": Ka, "delta": Ka - view}

    def import_(self, b, bun, phase, retry=True):
        if not b.alive:
            return None
        dump = os.environ.get("STRESS_DUMP")  # "SLOT:N": keep the Nth import into SLOT (db file + bundle)
        if dump:
            self.imports_into = getattr(self, "imports_into", {})
            self.imports_into[b.slot] = self.imports_into.get(b.slot, 0) + 1
            if dump == f"{b.slot}:{self.imports_into[b.slot]}":
                shutil.copy(b.path, os.path.join(self.wd, "dump.db"))
                with open(os.path.join(self.wd, "dump.bundle"), "wb") as f:
                    f.write(bun["blob"])
                self.note(f"  dumped dev{b.slot} before import {dump} to dump.db / dump.bundle")
        try:
            res = json.loads(self.q1(b.conn, "SELECT sync_bundle_in(?)", bun["blob"]))
        except Exception as e:
            msg = str(e)
            if retry and "forgotten" in msg and "sync_fork" in msg:
                self.expected.append({"step": self.step, "msg": msg})
                self.note(f"dev{b.slot} refused as forgotten (documented): sync_fork() and import again")
                try:
                    self.q1(b.conn, "SELECT sync_fork()")
                    self.refresh_id(b)
                except Exception as e2:
                    self.err(phase, f"sync_fork dev{b.slot}", e2)
                    return None
                return self.import_(b, bun, phase, retry=False)
            self.err(phase, f"import dev{bun['src']}->dev{b.slot}", e)
            return None
        old = b.id
        self.refresh_id(b)
        self.count_compact(res.get("compacted"))
        if b.id != old:
            self.stats["forks"] += 1
            self.note(f"dev{b.slot} forked {old[:8]} -> {b.id[:8]}")
        b.views[res["source_device_id"]] = bun["K"]
        src = self.devs[bun["src"]]
        b.met_in.add(src.slot)
        src.met_out.add(b.slot)
        for x in (b, src):
            if x.behind and all(o.slot in x.met_in and o.slot in x.met_out for o in self.live() if o is not x):
                x.behind = False
        if res.get("pending_count", 0) > 0:
            b.pend |= bun["delta"]
        else:
            b.K |= bun["delta"] | b.pend
            b.pend = set()
        self.note(f"import dev{bun['src']}->dev{b.slot}: app={res['applied_count']} dup={res['duplicate_count']} "
                  f"conf={res['conflict_count']} held={res['held_out_count']} pend={res['pending_count']} "
                  f"disc={res['discarded_count']} skip={res['skipped']} comp={res['compacted']}")
        watch = os.environ.get("STRESS_WATCH")  # "SLOT:SQL": print SQL's rows on SLOT after each import into it
        if watch and int(watch.split(":", 1)[0]) == b.slot:
            self.note(f"  watch dev{b.slot}: {self.q(b.conn, watch.split(':', 1)[1])}")
        return res

    def sync_pair(self, a, b, phase, null=False):
        self.refresh_id(b)
        bun = self.export(a, None if null else b.id, phase)
        if bun is None:
            return None, None
        return bun, self.import_(b, bun, phase)

    # -- file ops
    def close_dev(self, d):
        d.conn.close()
        d.conn = None

    def backup(self, d, method):
        f = self.newfile(f"bk{d.slot}_")
        if method == "api":
            import apsw
            dst = apsw.Connection(f)
            with dst.backup("main", d.conn, "main") as b:
                b.step()
            dst.close()
        elif method == "vacuum":
            d.conn.execute("VACUUM INTO ?", (f,))
        else:
            shutil.copyfile(d.path, f)   # the connection is idle (autocommit, nothing writing)
        self.refresh_id(d)
        self.backups.append({"slot": d.slot, "file": f, "K": set(d.K), "views": dict(d.views),
                             "pend": set(d.pend), "id": d.id, "step": self.step})
        self.note(f"backup dev{d.slot} ({method}) -> {os.path.basename(f)} id={d.id[:8]}")

    def restore(self, d, r, method):
        mine = [b for b in self.backups if b["slot"] == d.slot]
        if not mine:
            return False
        bk = mine[r % len(mine)]
        # sync_lost is this device's own table: the backup put back takes it back too (what it
        # listed is counted in `expected`, the documented limit, if nothing else holds it)
        for (t, pk, kind, cv) in self.q(d.conn, "SELECT table_name, pk, kind, cell_values FROM sync_lost"):
            self.lost_seen.append((t, json.loads(pk), kind, json.loads(cv) if cv else None, self.step, d.slot))
        self.close_dev(d)
        for ext in ("-journal", "-wal", "-shm"):
            if os.path.exists(d.path + ext):
                os.remove(d.path + ext)
        if method == "over":       # same file, same inode (like a restore tool writing in place)
            with open(bk["file"], "rb") as src, open(d.path, "r+b") as dst:
                data = src.read()
                dst.seek(0)
                dst.write(data)
                dst.truncate()
        else:                      # mv: a new inode
            tmp = d.path + ".tmp"
            shutil.copyfile(bk["file"], tmp)
            os.replace(tmp, d.path)
        self.stats["restores"] += 1
        # the device's seqs written since the backup may be written again under its id (put
        # back over the file, its id stays): its clock no longer tells which of them it holds
        for w in self.writes:
            if w.get("slot") == d.slot and w["step"] > bk["step"]:
                w["reusable"] = True
        d.behind, d.met_in, d.met_out = True, set(), set()
        d.K, d.views, d.pend = set(bk["K"]), dict(bk["views"]), set(bk["pend"])
        self.open_dev(d)
        self.note(f"restore dev{d.slot} from {os.path.basename(bk['file'])} (backup step {bk['step']}, {method}) id={d.id[:8]} (was {bk['id'][:8]} at backup)")
        return True

    def copy_dev(self, src, method, raws):
        d = Dev(len(self.devs), self.newfile(f"dev{len(self.devs)}_"))
        if method == "api":
            import apsw
            dst = apsw.Connection(d.path)
            with dst.backup("main", src.conn, "main") as b:
                b.step()
            dst.close()
        elif method == "vacuum":
            src.conn.execute("VACUUM INTO ?", (d.path,))
        else:
            shutil.copyfile(src.path, d.path)
        self.stats["copies"] += 1
        d.K, d.views, d.pend = set(src.K), dict(src.views), set(src.pend)
        self.devs.append(d)
        self.refresh_id(src)
        if raws:
            import apsw
            raw = apsw.Connection(d.path)   # never loads the extension
            for w in raws:
                self.do_write(d, raw, w, src.id, raw=True)
            raw.close()
        self.open_dev(d)
        self.note(f"copy dev{src.slot} ({method}, {len(raws)} raw writes) -> dev{d.slot} id={d.id[:8]}")

    # -- forget
    def forget_candidates(self, d):
        st = json.loads(self.q1(d.conn, "SELECT sync_status()"))
        current = {x.id for x in self.live()}
        for x in self.live():
            self.refresh_id(x)
            current.add(x.id)
        ids = set(st.get("former_ids", []))
        for p in st.get("peers", []):
            if not p.get("forgotten"):
                ids.add(p["device_id"])
        forgotten = {p["device_id"] for p in st.get("peers", []) if p.get("forgotten")}
        return sorted(i for i in ids if i not in current and i not in forgotten and i != d.id)

    def forget(self, d, r):
        cands = self.forget_candidates(d)
        if not cands:
            return
        fid = cands[r % len(cands)]
        try:
            res = self.q1(d.conn, "SELECT sync_forget(?)", fid)
            self.stats["forgets"] += 1
            self.note(f"dev{d.slot} forget {fid[:8]}: {res}")
        except Exception as e:
            self.err("run", f"forget dev{d.slot} {fid[:8]}", e)

    # -- resolve
    def resolve(self, d, r, choice):
        try:
            rows = self.q(d.conn, "SELECT id, table_name, pk, columns, kind FROM sync_conflicts WHERE NOT resolved ORDER BY id")
        except Exception as e:
            self.err("run", "read sync_conflicts", e)
            return
        if not rows:
            return
        cid, t, pk, cols, kind = rows[r % len(rows)]
        if kind == "constraint":
            choice = "remote"
        before = frozenset(d.K)
        try:
            ok = self.q1(d.conn, "SELECT sync_resolve(?, ?)", cid, choice)
        except Exception as e:
            msg = str(e)
            # refusals docs/conflicts.md describes (a list older than this device's own writes, a
            # chosen side that breaks a UNIQUE here): the app reads the list again / chooses values
            if ("changed after it was read" in msg or "no conflict with id" in msg
                    or "break a constraint" in msg):
                self.expected.append({"step": self.step, "msg": msg})
                self.note(f"dev{d.slot} resolve refused (documented): {msg}")
            else:
                self.err("run", f"resolve dev{d.slot} {kind} {choice}", e)
            return
        self.note(f"dev{d.slot} resolve {kind} {t} {pk} {cols} {choice} -> {ok}")
        if ok != 1 or t not in TABLES:
            return
        pkcol, allcols = TABLES[t]
        pkv = json.loads(pk)[pkcol]
        row = self.q(d.conn, f"SELECT {','.join(allcols)} FROM {t} WHERE {pkcol}=?", pkv)
        if not row:
            cells, k = None, "delete"
        else:
            rd = dict(zip(allcols, row[0]))
            cc = json.loads(cols) or allcols[1:]
            cells, k = {c: rd[c] for c in cc if c in rd}, "update"
        w = {"id": len(self.writes), "slot": d.slot, "dev": d.id, "t": t, "pk": pkv, "k": k,
             "cells": cells, "seen": before, "step": self.step, "raw": False, "resolution": True}
        self.writes.append(w)
        d.K.add(w["id"])

    # -- main loop
    def run_actions(self):
        for i, a in enumerate(self.actions):
            self.step = i
            try:
                self.do_action(a)
            except Exception as e:
                self.err("run", f"harness {a['a']}", repr(e) + " " + traceback.format_exc(limit=3))

    def do_action(self, a):
        kind = a["a"]
        if kind == "write":
            d = self.pick(a["d"])
            self.refresh_id(d)
            self.do_write(d, d.conn, a, d.id)
        elif kind == "sync":
            s, d = self.pick(a["s"]), self.pick(a["d"])
            if s is d:
                return
            pairs = [(s, d)] + ([(d, s)] if a["both"] else [])
            for x, y in pairs:
                self.refresh_id(y)
                bun = self.export(x, None if a["null"] else y.id, "run")
                if bun is None:
                    continue
                bun["dst"] = y.slot
                m = a["mode"]
                if m in ("now", "twice"):
                    self.import_(y, bun, "run")
                if m == "twice" or m == "late":
                    self.queue.append(bun)
                self.note(f"sync dev{x.slot}->dev{y.slot} mode={m} null={a['null']}")
        elif kind == "deliver":
            if self.queue:
                bun = self.queue.pop(a["r"] % len(self.queue))
                self.note(f"deliver late bundle dev{bun['src']}->dev{bun['dst']}")
                self.import_(self.devs[bun["dst"]], bun, "run")
        elif kind == "compact":
            d = self.pick(a["d"])
            try:
                c = self.q1(d.conn, 'SELECT sync_compact()')
                self.count_compact(c)
                self.note(f"dev{d.slot} compact: {c}")
            except Exception as e:
                self.err("run", f"compact dev{d.slot}", e)
        elif kind == "backup":
            self.backup(self.pick(a["d"]), a["m"])
        elif kind == "restore":
            self.restore(self.pick(a["d"]), a["r"], a["m"])
        elif kind == "resync":      # README: after putting a backup back, exchange with every device, then forget
            d = self.pick(a["d"])
            for o in self.live():
                if o is d:
                    continue
                self.sync_pair(d, o, "run")
                self.sync_pair(o, d, "run")
            st = json.loads(self.q1(d.conn, "SELECT sync_status()"))
            current = {x.id for x in self.live()}
            for fid in st.get("former_ids", []):
                if fid not in current:
                    try:
                        self.note(f"dev{d.slot} forget former {fid[:8]}: {self.q1(d.conn, 'SELECT sync_forget(?)', fid)}")
                    except Exception as e:
                        self.err("run", f"forget former dev{d.slot}", e)
        elif kind == "copy":
            if len(self.live()) >= 5:
                return
            self.copy_dev(self.pick(a["d"]), a["m"], a["raw"])
        elif kind == "forget":
            self.forget(self.pick(a["d"]), a["r"])
        elif kind == "resolve":
            self.resolve(self.pick(a["d"]), a["r"], a["c"])

    # -- final
    def quiet(self, phase, max_rounds=int(os.environ.get("STRESS_MAX_ROUNDS", "25"))):
        for rnd in range(max_rounds):
            changed = False
            for a in self.live():
                for b in self.live():
                    if a is b:
                        continue
                    before = (b.id, self.q1(b.conn, "SELECT sync_clock()"))
                    bun, res = self.sync_pair(a, b, phase)
                    after = (b.id, self.q1(b.conn, "SELECT sync_clock()"))
                    if res is None or res["applied_count"] or res["discarded_count"] or before != after:
                        changed = True
            if not changed:
                return rnd + 1
        return None

    def snapshot(self):
        out = {}
        for d in self.live():
            tabs = {}
            for t, (pkcol, cols) in TABLES.items():
                tabs[t] = [list(r) for r in self.q(d.conn, f"SELECT {','.join(cols)} FROM {t} ORDER BY {pkcol}")]
            st = json.loads(self.q1(d.conn, "SELECT sync_status()"))
            confl = self.q(d.conn, "SELECT id, table_name, pk, columns, local_values, remote_values, kind, resolved FROM sync_conflict_records")
            lost = self.q(d.conn, "SELECT device, seq, table_name, pk, kind, cell_values, certain FROM sync_lost")
            out[d.slot] = {"tables": tabs, "status": st, "conflicts": confl, "lost": lost}
        return out

    def check(self, label, snap):
        fails = []
        slots = sorted(snap)
        ref = snap[slots[0]]
        for s in slots[1:]:
            for t in TABLES:
                if snap[s]["tables"][t] != ref["tables"][t]:
                    a = {tuple(r) for r in ref["tables"][t]}
                    b = {tuple(r) for r in snap[s]["tables"][t]}
                    fails.append({"class": "diverge", "detail": f"{label}: dev{slots[0]} vs dev{s} table {t}: only in dev{slots[0]}: {sorted(a-b, key=repr)[:4]} only in dev{s}: {sorted(b-a, key=repr)[:4]}"})
        for s in slots:
            st = snap[s]["status"]
            if st["pending"]["ops"] or st["waiting_for_schema"]:
                fails.append({"class": "pending", "detail": f"{label}: dev{s} pending={st['pending']} waiting={st['waiting_for_schema']}"})
        oc = {s: sorted(r[0] for r in snap[s]["conflicts"] if not r[7]) for s in slots}
        if any(oc[s] != oc[slots[0]] for s in slots):
            fails.append({"class": "conflicts_differ", "detail": f"{label}: open conflict ids per device: " + json.dumps({s: len(v) for s, v in oc.items()})})
        return fails

    def saw(self, x, w):
        """Whether write x was made over write w: the model says so, or x's device's clock held
        w's op (where no other write is that op: a backup put back writes a seq again)."""
        if w["id"] in x["seen"]:
            return True
        if not (x.get("clock") and w.get("op") and w["op"][1]) or x["id"] == w["id"]:
            return False
        if sum(1 for o in self.writes if o.get("op") == w["op"]) > 1:
            return False
        return x["clock"].get(w["op"][0], 0) >= w["op"][1]

    def bookkeeping(self, snap):
        """Every write known to some live device at the end must be in the table, overwritten by a
        causally later write, a side of a conflict record, or listed in sync_lost."""
        required = set()
        for d in self.live():
            required |= d.K
        # and every write whose op a live device's clock holds at the end (the model's account
        # of what each bundle carried is a lower bound)
        for x in self.writes:
            op = x.get("op")
            if op and op[1] and not x.get("reusable") and sum(1 for o in self.writes if o.get("op") == op) == 1:
                if any(snap[s]["status"]["clock"].get(op[0], 0) >= op[1] for s in snap):
                    required.add(x["id"])
        ref = snap[sorted(snap)[0]]
        rows = {}
        for t, (pkcol, cols) in TABLES.items():
            for r in ref["tables"][t]:
                rows[(t, r[0])] = dict(zip(cols, r))
        if os.environ.get("STRESS_INJECT"):   # self-test of this check: pretend a row vanished
            k0 = sorted(rows, key=repr)[0]
            del rows[k0]
        confl, lost = [], []
        for s in snap:
            for (cid, t, pk, cols, lv, rv, kind, res) in snap[s]["conflicts"]:
                confl.append((t, json.loads(pk), json.loads(cols or "[]"), json.loads(lv) if lv else None,
                              json.loads(rv) if rv else None, kind))
            for (dev, seq, t, pk, kind, cv, cert) in snap[s]["lost"]:
                lost.append((t, json.loads(pk), kind, json.loads(cv) if cv else None))
        by_row = {}
        for w in self.writes:
            by_row.setdefault((w["t"], w["pk"]), []).append(w)
        unacc = []
        for w in self.writes:
            if w["id"] not in required:
                continue
            t, pkcol = w["t"], TABLES[w["t"]][0]
            row = rows.get((t, w["pk"]))
            # (a write the model does not count as required but whose values the row shows, or
            # a delete of a row that is not there, reached the devices all the same)
            evident = lambda x: (row is None if x["cells"] is None else
                                 row is not None and all(row.get(c) == v for c, v in x["cells"].items()))
            later = [x for x in by_row[(t, w["pk"])] if (x["id"] in required or evident(x)) and self.saw(x, w)]
            in_lost = any(l[0] == t and l[1].get(pkcol) == w["pk"] and l[2] == w["k"] and
                          (w["cells"] is None or all(l[3] and l[3].get(c) == v for c, v in w["cells"].items()))
                          for l in lost)
            if in_lost:
                continue
            listed_once = [l for l in self.lost_seen if l[0] == t and l[1].get(pkcol) == w["pk"] and l[2] == w["k"] and
                           (w["cells"] is None or all(l[3] and l[3].get(c) == v for c, v in w["cells"].items()))]
            if listed_once:
                self.expected.append({"step": "final", "msg": f"W{w['id']} listed in sync_lost on dev{listed_once[0][5]} only, "
                                      f"which a backup was put back over at step {listed_once[0][4]} (documented)"})
                continue
            sides = [c for c in confl if c[0] == t and c[1].get(pkcol) == w["pk"]]
            if w["cells"] is None:   # delete
                if row is None or later:
                    continue
                if any(c[3] is None or c[4] is None for c in sides):
                    continue
                hist = "; ".join(f"W{x['id']}@{x['step']} dev{x['slot']} {x['k']} {x['cells']}" for x in by_row[(t, w["pk"])])
                unacc.append((w, f"row present {row}, delete not a conflict side; row history: {hist}"))
                continue
            missing = []
            for c, v in w["cells"].items():
                if row is not None and row.get(c) == v and type(row.get(c)) == type(v):
                    continue
                if any(c in x["cells"] if x["cells"] is not None else True for x in later):
                    continue
                ok = False
                for (_, _, ccols, lv, rv, kind) in sides:
                    for side in (lv, rv):
                        if isinstance(side, dict) and c in side and side[c] == v:
                            ok = True
                if not ok:
                    missing.append(c)
            if missing:
                hist = "; ".join(f"W{x['id']}@{x['step']} dev{x['slot']} {x['k']} {x['cells']}"
                                 f"{' (saw W%d)' % w['id'] if self.saw(x, w) else ''}"
                                 f"{'' if x['id'] in required else ' (not required)'}"
                                 for x in by_row[(t, w["pk"])])
                unacc.append((w, f"cells {missing} not shown (row={row}); row history: {hist}; conflict sides: {[(c[2], c[3], c[4], c[5]) for c in sides]}"))
        # phantom values: every final cell value was written by someone
        phantoms = []
        for (t, pk), row in rows.items():
            for c, v in row.items():
                if v is None:
                    continue
                if not any((x["cells"] or {}).get(c) == v for x in by_row.get((t, pk), [])):
                    phantoms.append(f"{t} {pk!r} {c}={v!r}")
        return unacc, phantoms, len(required)

    def final(self):
        self.step = "final"
        res = {"fails": []}
        # deliver what is still queued (late bundles), then sync every pair until quiet
        for bun in list(self.queue):
            self.import_(self.devs[bun["dst"]], bun, "final")
        self.queue = []
        r1 = self.quiet("final")
        if r1 is None:
            res["fails"].append({"class": "not_quiet", "detail": "phase 1 not quiet after 25 rounds"})
        snap = self.snapshot()
        res["fails"] += self.check("after sync", snap)
        unacc, phantoms, nreq = self.bookkeeping(snap)
        for w, why in unacc:
            res["fails"].append({"class": "lost_behind" if w["behind"] else "lost", "detail": f"W{w['id']} (step {w['step']}, dev{w['slot']}, {w['k']} {w['t']} {w['pk']!r} {w['cells']}{' raw' if w['raw'] else ''}): {why}"})
        for p in phantoms:
            res["fails"].append({"class": "phantom", "detail": p})
        # phase 2: every device compacts, sync again until quiet, check again
        self.step = "final2"
        for d in self.live():
            try:
                self.note(f"final compact dev{d.slot}: {self.q1(d.conn, 'SELECT sync_compact()')}")
            except Exception as e:
                self.err("final2", f"compact dev{d.slot}", e)
        r2 = self.quiet("final2")
        if r2 is None:
            res["fails"].append({"class": "not_quiet", "detail": "phase 2 not quiet after 25 rounds"})
        snap2 = self.snapshot()
        res["fails"] += [dict(f, detail="(after compact) " + f["detail"]) for f in self.check("after compact", snap2)]
        for e in self.errors:
            res["fails"].append({"class": "error:" + norm_err(e["msg"]), "detail": f"{e['phase']} step {e['step']} {e['what']}: {e['msg']}"})
        res["rounds"] = [r1, r2]
        res["stats"] = self.stats
        res["writes"] = len(self.writes)
        res["required"] = nreq
        res["devices"] = len(self.live())
        res["expected_refusals"] = len(self.expected)
        res["expected"] = sorted({norm_err(e["msg"]) for e in self.expected})
        res["lost_rows"] = {s: len(snap2[s]["lost"]) for s in snap2}
        res["open_conflicts"] = {s: snap2[s]["status"]["open_conflicts"] for s in snap2}
        res["held_out"] = {s: snap2[s]["status"]["held_out_rows"] for s in snap2}
        res["classes"] = sorted({f["class"] for f in res["fails"]})
        return res


def run_sched(sched, workdir, verbose=False):
    if os.path.exists(workdir):
        shutil.rmtree(workdir)
    os.makedirs(workdir)
    r = Run(sched, workdir, verbose)
    r.setup()
    r.run_actions()
    res = r.final()
    res["cfg"] = sched["cfg"]
    res["steps"] = len(sched["actions"])
    with open(os.path.join(workdir, "log.txt"), "w") as f:
        f.write("\n".join(r.log))
    return res


def ensure_env(detrand):
    if os.environ.get("LD_PRELOAD") != SHIM or os.environ.get("DETRAND_SEED") != str(detrand):
        env = dict(os.environ, LD_PRELOAD=SHIM, DETRAND_SEED=str(detrand), PYTHONHASHSEED="0")
        os.execve(PY, [PY] + sys.argv, env)


def child(sched_file_or_seed, steps, verbose, workdir):
    if os.path.exists(str(sched_file_or_seed)):
        sched = json.load(open(sched_file_or_seed))
    else:
        sched = gen_schedule(int(sched_file_or_seed), steps)
    ensure_env(sched["cfg"]["detrand"])
    res = run_sched(sched, workdir, verbose)
    print("RESULT " + json.dumps(res, default=str))


def run_sub(arg, workdir, steps=None, timeout=300):
    cmd = ["nice", "-n", "19", PY, os.path.abspath(__file__), "run", str(arg), "--workdir", workdir]
    if steps:
        cmd += ["--steps", str(steps)]
    t0 = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"classes": ["timeout"], "fails": [{"class": "timeout", "detail": f"> {timeout}s"}], "secs": timeout}
    for line in p.stdout.splitlines()[::-1]:
        if line.startswith("RESULT "):
            res = json.loads(line[7:])
            res["secs"] = round(time.time() - t0, 1)
            return res
    return {"classes": ["crash"], "fails": [{"class": "crash", "detail": f"rc={p.returncode} {p.stderr[-800:]}"}],
            "secs": round(time.time() - t0, 1)}


def shrink(sched, target, budget, out, workdir):
    t_end = time.time() + budget
    os.environ.setdefault("STRESS_MAX_ROUNDS", "8")
    acts = sched["actions"]
    tmp = out + ".try.json"
    def fails(cand):
        s = {"cfg": sched["cfg"], "actions": cand}
        json.dump(s, open(tmp, "w"))
        res = run_sub(tmp, workdir, timeout=120)
        return any(c.startswith(target) for c in res.get("classes", [])), res
    n = 2
    tries = 0
    while len(acts) >= 2 and time.time() < t_end:
        chunk = max(1, len(acts) // n)
        removed = False
        i = 0
        while i < len(acts) and time.time() < t_end:
            cand = acts[:i] + acts[i + chunk:]
            tries += 1
            ok, _ = fails(cand)
            if ok:
                acts = cand
                removed = True
                json.dump({"cfg": sched["cfg"], "actions": acts, "target": target}, open(out, "w"), indent=0)
                print(f"  shrink: {len(acts)} actions ({tries} tries)", flush=True)
            else:
                i += chunk
        if not removed:
            if chunk == 1:
                break
            n = min(len(acts), n * 2)
    json.dump({"cfg": sched["cfg"], "actions": acts, "target": target}, open(out, "w"), indent=0)
    if os.path.exists(tmp):
        os.remove(tmp)
    return acts, time.time() < t_end


def main():
    args = sys.argv[1:]
    def opt(name, default=None):
        if name in args:
            i = args.index(name)
            v = args[i + 1]
            del args[i:i + 2]
            return v
        return default
    steps = opt("--steps")
    steps = int(steps) if steps else None
    workdir = opt("--workdir", os.path.join(HERE, "runs", "cur"))
    budget = float(opt("--budget", "600"))
    outp = opt("--out")
    verbose = "-v" in args
    args = [a for a in args if a != "-v"]
    cmd = args[0]
    if cmd == "run":
        child(args[1], steps, verbose, workdir)
    elif cmd == "replay":
        child(args[1], None, True, os.path.join(HERE, "runs", "replay"))
    elif cmd == "save":
        json.dump(gen_schedule(int(args[1]), steps), open(args[2], "w"), indent=0)
    elif cmd == "batch":
        first, last = int(args[1]), int(args[2])
        t_end = time.time() + budget
        with open(os.path.join(HERE, "results.jsonl"), "a") as f:
            for seed in range(first, last + 1):
                if time.time() > t_end:
                    break
                res = run_sub(seed, os.path.join(HERE, "runs", "batch"), steps)
                res["seed"] = seed
                f.write(json.dumps(res, default=str) + "\n")
                f.flush()
                print(f"seed {seed}: {res['secs']}s classes={res.get('classes')} writes={res.get('writes')} devs={res.get('devices')} rounds={res.get('rounds')}", flush=True)
    elif cmd == "shrink":
        sched = json.load(open(args[1]))
        target = args[2]
        out = outp or args[1].replace(".json", ".min.json")
        acts, _ = shrink(sched, target, budget, out, opt("--workdir", os.path.join(HERE, "runs", "shrink")))
        print(f"shrunk to {len(acts)} actions -> {out}")


if __name__ == "__main__":
    main()
