# tracks every write the test makes and what each device has seen, to check "nothing lost without a trace"
import json
class Tracker:
    def __init__(self):
        self.cells = []           # (wid, dev, rowid, col or None(delete), val)
        self.knows = {}
        self.super = set()
    def write(self, dev, rowid, cols):
        k = self.knows.setdefault(dev, set())
        new = []
        if cols is None:
            for w in k:
                if self.cells[w][2] == rowid: self.super.add(w)
            new.append((rowid, None, None))
        else:
            for w in k:
                _, _, r, c, _ = self.cells[w]
                if r == rowid and (c is None or c in cols): self.super.add(w)
            new += [(rowid, c, v) for c, v in cols.items()]
        for r, c, v in new:
            wid = len(self.cells); self.cells.append((wid, dev, r, c, v)); k.add(wid)
    def sync(self, s, t):
        self.knows[t] = self.knows.setdefault(t, set()) | self.knows.setdefault(s, set())
    def copy(self, s, t):
        self.knows[t] = set(self.knows.get(s, set()))
    def check(self, d):
        rows = {r[0]: r for r in d.rows()}
        colsidx = {c: i for i, c in enumerate([x[1] for x in d.q("PRAGMA table_info(notes)")])}
        recs = d.q("SELECT pk, local_values, remote_values FROM sync_conflict_records")
        lost = d.q("SELECT pk, cell_values, kind FROM sync_lost")
        L = lambda s: (json.loads(s) if s else None) or {}
        missing = []
        for wid, dev, rid, c, v in self.cells:
            if wid in self.super: continue
            pk = json.dumps({"id": rid}, separators=(",", ":"))
            if c is None:
                if rid not in rows: continue
                if any(p == pk and (lv == "null" or rv == "null") for p, lv, rv in recs): continue
                if any(p == pk and k == "delete" for p, cv, k in lost): continue
                missing.append((wid, dev, rid, "DELETE")); continue
            if rid in rows and rows[rid][colsidx[c]] == v: continue
            if any(p == pk and (L(lv).get(c) == v or L(rv).get(c) == v) for p, lv, rv in recs): continue
            if any(p == pk and L(cv).get(c) == v for p, cv, k in lost): continue
            missing.append((wid, dev, rid, c, v))
        return missing

def restore(T, dev, snapshot):
    """dev's file put back to a backup whose knowledge was snapshot: writes only dev had since are gone with the disk"""
    others = set().union(*[k for n, k in T.knows.items() if n != dev]) if len(T.knows) > 1 else set()
    gone = (T.knows[dev] - snapshot) - others
    T.super |= gone
    T.knows[dev] = set(snapshot)
    return len(gone)
