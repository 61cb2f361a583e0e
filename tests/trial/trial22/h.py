# small helper for trial scripts
import apsw, json, os, shutil, sys
import os
LIB = os.environ.get('EXT', 'dist/sync0')
COMPACT = True  # run sync_compact() after each import
VERB = False
AUTO = None     # set compact_every on each device (int) if not None

def wipe(d):
    shutil.rmtree(d, ignore_errors=True); os.makedirs(d)

def dev(path, init=True):
    c = apsw.Connection(path)
    c.enableloadextension(True); c.loadextension(LIB)
    c.execute("PRAGMA busy_timeout=5000")
    if init:
        c.execute("SELECT sync_init()")
        c.execute("CREATE TABLE IF NOT EXISTS t(id TEXT PRIMARY KEY, v TEXT, w TEXT)")
        c.execute("SELECT sync_enable('t')")
        if AUTO is not None:
            c.execute("INSERT OR REPLACE INTO _sync_state(name,value) VALUES('compact_every',?)", (AUTO,))
    return c

def raw(path):
    return apsw.Connection(path)

def q(c, sql, *a):
    return c.execute(sql, a).fetchall()

def one(c, sql, *a):
    return c.execute(sql, a).fetchone()[0]

def did(c):
    return one(c, "SELECT sync_device_id()")

_n = [0]
def out(c, path, peer=None):
    _n[0] += 1
    r = json.loads(one(c, "SELECT sync_bundle_out(?, ?)", peer, path))
    return path

def inn(c, path, tag=''):
    r = json.loads(one(c, "SELECT sync_bundle_in(?)", path))
    cp = None
    if COMPACT:
        cp = json.loads(one(c, "SELECT sync_compact()"))
    keys = ('applied_count','conflict_count','pending_count','discarded_count','duplicate_count','skipped')
    print(f"  in {tag or os.path.basename(path)}:", {k: r.get(k) for k in keys}, 'auto' if r.get('compacted') else '', 'cmp', cp)
    return r

def xfer(a, b, name, d):
    """a exports a full bundle (peer NULL), b imports"""
    p = os.path.join(d, name + '.bundle')
    if os.path.exists(p): os.remove(p)
    out(a, p)
    return inn(b, p, name)

def xferp(a, b, name, d):
    """a exports addressed to b"""
    p = os.path.join(d, name + '.bundle')
    if os.path.exists(p): os.remove(p)
    out(a, p, did(b))
    return inn(b, p, name)

def rows(c):
    return q(c, "SELECT id, v, w FROM t ORDER BY id")

def check(devs, writes):
    """devs: dict name->conn. writes: list of (desc, id, col, value) value None means delete."""
    ok = True
    names = list(devs)
    base = rows(devs[names[0]])
    for n in names:
        r = rows(devs[n])
        if r != base:
            ok = False
            print(f"DIFFERENT: {names[0]}={base}\n           {n}={r}")
    if ok:
        print("tables identical:", base)
    # account for writes across devices
    found = {w[0]: [] for w in writes}
    for n in names:
        c = devs[n]
        conf = q(c, "SELECT pk, local_values, remote_values, resolved, kind FROM sync_conflict_records")
        lost = q(c, "SELECT device, seq, pk, kind, cell_values, certain FROM sync_lost")
        tbl = {r[0]: r for r in rows(c)}
        for desc, pid, col, val in writes:
            where = found[desc]
            if val is None:
                if pid not in tbl: where.append(n+':absent')
            else:
                r = tbl.get(pid)
                if r and r[{'v':1,'w':2}[col]] == val: where.append(n+':table')
            for pk, lv, rv, res, kind in conf:
                if json.loads(pk).get('id') != pid: continue
                for side in (lv, rv):
                    j = json.loads(side) if side else None
                    if val is None and j is None: where.append(n+':conflict')
                    elif isinstance(j, dict) and j.get(col) == val: where.append(n+':conflict')
            for dv, seq, pk, kind, cv, cert in lost:
                if json.loads(pk).get('id') != pid: continue
                j = json.loads(cv) if cv else None
                if val is None and kind == 'delete': where.append(n+':lost')
                elif isinstance(j, dict) and j.get(col) == val: where.append(n+f':lost{cert}')
        if lost: print(f"  [{n}] sync_lost:", [(l[0][:6],)+l[1:] for l in lost])
        oc = q(c, "SELECT pk, columns, local_values, remote_values, resolved, kind FROM sync_conflict_records")
        if oc and VERB: print(f"  [{n}] conflicts:", oc)
    for desc, pid, col, val in writes:
        w = found[desc]
        if not w:
            ok = False; print(f"  UNACCOUNTED write {desc}: id={pid} {col}={val}")
        elif VERB or not all(x.endswith('table') or x.endswith('absent') for x in w):
            print(f"  {desc}: {sorted(set(x.split(':')[1] for x in w))} on {sorted(set(x.split(':')[0] for x in w))}")
    print("RESULT:", "OK" if ok else "BROKEN")
    return ok

def wr(c, sql, W, rec):
    """execute a write; add rec to W only if it changed a row"""
    c.execute(sql)
    n = c.changes()
    if n: W.append(rec)
    else: print('  (no-op write:', rec[0], ')')
    return n
