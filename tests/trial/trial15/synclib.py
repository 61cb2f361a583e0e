import apsw, json, os, shutil
LIB = os.environ.get("EXT", "/tmp/newlib/sync0")
SCHEMA = ("CREATE TABLE IF NOT EXISTS notes(id TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))), "
          "title TEXT NOT NULL, body TEXT, n INTEGER DEFAULT 0)")

class Dev:
    def __init__(self, name, d, init=True, load=True):
        self.name, self.dir = name, d
        self.path = os.path.join(d, name + ".db")
        self.db = None
        self.open(load)
        if init:
            self.q1("SELECT sync_init()")
            self.db.execute(SCHEMA)
            self.q1("SELECT sync_enable('notes')")
    def open(self, load=True):
        self.db = apsw.Connection(self.path)
        self.db.setbusytimeout(5000)
        if load:
            self.db.enableloadextension(True)
            self.db.loadextension(LIB)
    def close(self):
        self.db.close(); self.db = None
    def q(self, sql, *a):
        return list(self.db.execute(sql, a))
    def q1(self, sql, *a):
        r = self.q(sql, *a)
        return r[0][0] if r else None
    def j(self, sql, *a):
        return json.loads(self.q1(sql, *a))
    @property
    def id(self): return self.q1("SELECT sync_device_id()")
    def out(self, peer=None, tag=None):
        p = os.path.join(self.dir, f"{self.name}-{tag or 'x'}.bundle")
        if os.path.exists(p): os.remove(p)
        pid = peer.id if isinstance(peer, Dev) else peer
        r = self.j("SELECT sync_bundle_out(?, ?)", pid, p)
        return p, r
    def inn(self, path):
        return self.j("SELECT sync_bundle_in(?)", path)
    def status(self): return self.j("SELECT sync_status()")
    def rows(self): return self.q("SELECT * FROM notes ORDER BY id")
    def open_conf(self): return self.q("SELECT id,table_name,pk,columns,winner_op_id,kind, min(local_values,remote_values), max(local_values,remote_values) FROM sync_conflict_records WHERE NOT resolved GROUP BY id ORDER BY id")
    def lost(self): return self.q("SELECT device,seq,table_name,pk,kind,cell_values,certain,reason FROM sync_lost")

def sync(a, b, tag):
    """a sends to b (addressed), b imports"""
    p, r = a.out(b, tag)
    return b.inn(p)

def short(r, keys=("applied_count","duplicate_count","conflict_count","pending_count","discarded_count","skipped","held_out_count","compacted")):
    return {k: r.get(k) for k in keys}

def compare(devs, verbose=True):
    base = devs[0].rows()
    ok = True
    for d in devs[1:]:
        if d.rows() != base:
            ok = False
            if verbose:
                print(f"  DIFF {devs[0].name} vs {d.name}:")
                print("   ", set(base) - set(d.rows()), "\n   ", set(d.rows()) - set(base))
    confs = [sorted(d.open_conf()) for d in devs]
    cok = all(c == confs[0] for c in confs)
    print(f"  tables identical: {ok}; open conflicts equal: {cok} ({[len(c) for c in confs]})")
    return ok and cok

def pend(d):
    s = d.status(); return s["pending"]["ops"]

def brief(d):
    s = d.status()
    return {"dev": d.name, "clock": {k[:4]: v for k, v in s["clock"].items()}, "stable": {k[:4]: v for k, v in s["stable"].items()},
            "log_ops": s["log"]["ops"], "pending": s["pending"]["ops"], "open": s["open_conflicts"], "held": s["held_out_rows"], "lost": s["lost_writes"],
            "former": [f[:4] for f in s["former_ids"]],
            "peers": {p["device_id"][:4]: (p["forgotten"], p["heard_from"], p["lacks"]) for p in s["peers"]}}

def check_status(d):
    """compare sync_status() figures with what the views say"""
    s = d.status(); bad = []
    n_log = d.q1("SELECT count(*) FROM sync_log")
    if s["log"]["ops"] != n_log: bad.append(f"log.ops {s['log']['ops']} != count(sync_log) {n_log}")
    if s["log"]["local_ops"] + s["log"]["received_ops"] != s["log"]["ops"]: bad.append(f"local {s['log']['local_ops']} + received {s['log']['received_ops']} != ops {s['log']['ops']}")
    n_local = d.q1("SELECT count(*) FROM sync_log WHERE device = sync_device_id()")
    if s["log"]["local_ops"] != n_local: bad.append(f"local_ops {s['log']['local_ops']} != sync_log rows of this device id {n_local}")
    oc = d.q1("SELECT count(*) FROM sync_conflicts WHERE NOT resolved AND kind='concurrent'")
    if s["open_conflicts"] != oc: bad.append(f"open_conflicts {s['open_conflicts']} != {oc}")
    ho = d.q1("SELECT count(*) FROM sync_conflicts WHERE kind='constraint'")
    if s["held_out_rows"] != ho: bad.append(f"held_out_rows {s['held_out_rows']} != {ho}")
    lw = d.q1("SELECT count(*) FROM sync_lost")
    if s["lost_writes"] != lw: bad.append(f"lost_writes {s['lost_writes']} != {lw}")
    clk = json.loads(d.q1("SELECT sync_clock()"))
    if clk != s["clock"]: bad.append(f"clock {s['clock']} != sync_clock {clk}")
    if s["pending"]["ops"] != sum(v["ops"] for v in s["pending"]["devices"].values()): bad.append("pending ops sum")
    for k, v in s["stable"].items():
        if v > s["clock"].get(k, 0): bad.append(f"stable {k[:4]}={v} above clock {s['clock'].get(k)}")
    if bad: print("  STATUS MISMATCH on", d.name, bad)
    return bad
