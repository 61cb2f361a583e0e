import apsw, json, os, shutil, sys
EXT=os.environ.get('EXT', '/tmp/newlib/sync0')
SCHEMA="CREATE TABLE IF NOT EXISTS notes(id TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))), title TEXT, body TEXT, n INTEGER DEFAULT 0)"
def conn(path, load=True):
    c=apsw.Connection(path)
    c.execute("PRAGMA busy_timeout=5000")
    if load:
        c.enable_load_extension(True); c.load_extension(EXT)
    return c
def q(c, sql, *a):
    return c.execute(sql, a).fetchall()
def q1(c, sql, *a):
    r=c.execute(sql, a).fetchone(); return r[0] if r else None
def J(c, sql, *a):
    v=q1(c, sql, *a); return json.loads(v) if v is not None else None
class Dev:
    def __init__(s, name, path, new=True):
        s.name=name; s.path=path
        if new and os.path.exists(path): os.remove(path)
        s.c=conn(path)
        q(s.c,"SELECT sync_init()"); q(s.c,SCHEMA); q(s.c,"SELECT sync_enable('notes')")
    def reopen(s, load=True):
        s.c.close(); s.c=conn(s.path, load)
    @property
    def id(s): return q1(s.c,"SELECT sync_device_id()")
    def out(s, peer=None):
        if peer is not None and not isinstance(peer,str): peer=peer.id
        return q1(s.c,"SELECT sync_bundle_out(?)",peer)
    def inn(s, b):
        return J(s.c,"SELECT sync_bundle_in(?)",b)
    def status(s): return J(s.c,"SELECT sync_status()")
    def compact(s): return J(s.c,"SELECT sync_compact()")
    def x(s, sql, *a): return q(s.c, sql, *a)
def sync(a,b, log=None):
    r1=b.inn(a.out(b)); r2=a.inn(b.out(a))
    if log is not None: log.append((a.name,b.name,r1,r2))
    return r1,r2
def state(d):
    rows=q(d.c,"SELECT * FROM notes ORDER BY id")
    conf=q(d.c,"SELECT table_name,pk,columns,kind,local_values,remote_values FROM sync_conflicts WHERE NOT resolved ORDER BY 1,2,3,5,6")
    # normalize local/remote as unordered pair
    conf=sorted(tuple(sorted([r[4] or '',r[5] or '']))+r[:4] for r in conf)
    st=d.status()
    lost=q(d.c,"SELECT device,seq,table_name,pk,kind,cell_values,certain,reason FROM sync_lost ORDER BY 1,2")
    return dict(rows=rows, conf=conf, pending=st['pending'], lost=lost)
def compare(devs, verbose=True):
    ss={d.name:state(d) for d in devs}
    ok=True
    base=devs[0].name
    for d in devs:
        s=ss[d.name]
        if s['pending']['ops']: ok=False; print(f"  {d.name}: PENDING {s['pending']}")
        if s['lost']: print(f"  {d.name}: sync_lost {len(s['lost'])} rows: {s['lost'][:5]}")
        if s['rows']!=ss[base]['rows']:
            ok=False; print(f"  {d.name}: ROWS DIFFER from {base}: only here {sorted(set(s['rows'])-set(ss[base]['rows']))[:5]} only in {base} {sorted(set(ss[base]['rows'])-set(s['rows']))[:5]}")
        if s['conf']!=ss[base]['conf']:
            ok=False; print(f"  {d.name}: CONFLICTS DIFFER from {base}: {s['conf'][:4]} vs {ss[base]['conf'][:4]}")
    if verbose: print("  compare:", "SAME" if ok else "DIFFERENT", {d.name:(len(ss[d.name]['rows']),len(ss[d.name]['conf'])) for d in devs})
    return ok, ss
def full_mesh(devs, rounds=2):
    for _ in range(rounds):
        for i in range(len(devs)):
            for j in range(i+1,len(devs)):
                sync(devs[i],devs[j])
