# copies: cp copies, backups put back, forgetting the wrong id. usage: python copies.py SCENARIO [seed]
import os, random, shutil, json, sys, subprocess
from synclib import *
from tracker import Tracker, restore
SC = sys.argv[1]; SEED = int(sys.argv[2]) if len(sys.argv) > 2 else 1
COMPACT = os.environ.get("COMPACT", "1") == "1"
D0 = os.environ.get("WORK", "/tmp/trial15") + f"/cp_{SC}_{SEED}"; shutil.rmtree(D0, ignore_errors=True); os.makedirs(D0)
rnd = random.Random(SEED); T = Tracker(); ctr = [0]
A, B, C = Dev("A", D0), Dev("B", D0), Dev("C", D0)
AUTO = os.environ.get("AUTO")
_orig_init = Dev.__init__
def _init(self, *a, **k):
    _orig_init(self, *a, **k)
    if AUTO and self.q1("SELECT sync_device_id()"): self.q("INSERT OR REPLACE INTO _sync_state(name,value) VALUES('compact_every', ?)", int(AUTO))
Dev.__init__ = _init
if AUTO:
    for d in (A, B, C): d.q("INSERT OR REPLACE INTO _sync_state(name,value) VALUES('compact_every', ?)", int(AUTO))
A.q("BEGIN")
for i in range(12):
    A.q("INSERT INTO notes(id,title,body) VALUES (?,?,?)", f"r{i:02}", f"t{i}", "init"); T.write("A", f"r{i:02}", {"title": f"t{i}", "body": "init", "n": 0})
A.q("COMMIT")
p, _ = A.out(None, "full0")
for d in (B, C): d.inn(p); T.sync("A", d.name)
def edits(d, k, conn=None):
    conn = conn or d.db
    for _ in range(k):
        ctr[0] += 1; v = f"{d.name}{ctr[0]}"
        ids = sorted(r[0] for r in conn.execute("SELECT id FROM notes"))
        x = rnd.random()
        if x < 0.55 and ids:
            i = rnd.choice(ids[:6]); conn.execute("UPDATE notes SET title=? WHERE id=?", (v, i)); T.write(d.name, i, {"title": v})
        elif x < 0.75 and ids:
            i = rnd.choice(ids); conn.execute("UPDATE notes SET body=?, n=? WHERE id=?", (v, ctr[0], i)); T.write(d.name, i, {"body": v, "n": ctr[0]})
        elif x < 0.85 and ids:
            i = rnd.choice(ids); conn.execute("DELETE FROM notes WHERE id=?", (i,)); T.write(d.name, i, None)
        else:
            i = f"{d.name}_{ctr[0]}"; conn.execute("INSERT INTO notes(id,title) VALUES (?,?)", (i, v)); T.write(d.name, i, {"title": v, "body": None, "n": 0})
        if os.environ.get("TRACE"): print(f"      write#{ctr[0]} {d.name} x={x:.2f} row={i} wid_end={len(T.cells)-1}")
def xsync(s, t, tag):
    try:
        r = sync(s, t, tag)
    except Exception as e:
        print(f"    {s.name}->{t.name} ERROR: {e}"); return None
    T.sync(s.name, t.name)
    if os.environ.get("EACH"): t.j("SELECT sync_compact()")
    if r["pending_count"] or r["discarded_count"]: print("    ", s.name, "->", t.name, short(r))
    return r
def mesh(devs, tag, compact=COMPACT):
    if os.environ.get("TRACE"): print("    mesh", tag, [d.name for d in devs])
    for s in devs:
        for t in devs:
            if s is not t: xsync(s, t, f"{tag}{s.name}{t.name}")
    if compact:
        return {d.name: tuple(d.j("SELECT sync_compact()").values()) for d in devs}
def final(devs):
    for k in range(3): mesh(devs, f"fin{k}")
    ok = compare(devs)
    for d in devs:
        b = brief(d); m = T.check(d)
        print("  ", d.name, d.id[:4], "log", b["log_ops"], "pend", b["pending"], "open", b["open"], "lost", b["lost"], "former", b["former"], "stable", b["stable"])
        if m: print("   ", d.name, "MISSING (not in table, conflicts or sync_lost):", len(m), m[:6])
        for l in d.lost(): print("    sync_lost on", d.name, l)
        check_status(d)
    src = devs[1]
    E = Dev("E", D0); p, _ = src.out(None, "fullE"); r = E.inn(p)
    okE = compare([src, E], verbose=True)
    print("  late joiner E from", src.name, "full bundle:", "same" if okE else "DIFFERENT", "pending", r["pending_count"])
    print("RESULT", SC, SEED, "converged" if ok else "DIFFERENT", "late-joiner", "same" if okE else "DIFFERENT")

for rd in range(2):
    for d in (A, B, C): edits(d, 4)
    print("warm", rd, mesh([A, B, C], f"w{rd}"))

if SC == "cpgood":
    # set up a new device by copying B's file; open it with the extension loaded before writing
    B.close(); shutil.copy(B.path, f"{D0}/N.db"); B.open()
    N = Dev("N", D0, init=False); T.copy("B", "N")
    print(" N id", N.id[:4], "B id", B.id[:4], "N former", brief(N)["former"])
    N.q1("SELECT sync_init()")
    for d in (A, B, C, N): edits(d, 4)
    print(mesh([A, B, C, N], "c1"))
    for d in (A, B, C, N): edits(d, 4)
    final([A, B, C, N])
elif SC == "cpnoext":
    # copy B's file, then write on the copy with a connection that never loaded the extension, then load
    B.close(); shutil.copy(B.path, f"{D0}/N.db"); B.open()
    raw = apsw.Connection(f"{D0}/N.db")
    class Fake: name = "N"
    T.copy("B", "N"); edits(Fake, 5, raw); raw.close()
    for d in (A, B, C): edits(d, 3)
    print(mesh([A, B, C], "c0"))
    N = Dev("N", D0, init=False)
    print(" N id", N.id[:4], "B id", B.id[:4], "N former", brief(N)["former"], "N clock", brief(N)["clock"])
    for d in (A, B, C, N): edits(d, 4)
    print(mesh([A, B, C, N], "c1"))
    final([A, B, C, N])
elif SC in ("restore_bad", "restore_good", "restore_mv"):
    A.close(); shutil.copy(A.path, f"{D0}/A.backup"); A.open(); snap = set(T.knows["A"])
    # life goes on: A writes and syncs, everyone compacts
    for rd in range(3):
        for d in (A, B, C): edits(d, 4)
        print("after backup", rd, mesh([A, B, C], f"b{rd}"))
    for d in (A,): edits(d, 3)   # A's unsynced writes, lost with the disk
    A.close()
    if SC == "restore_mv":
        shutil.copy(f"{D0}/A.backup", f"{D0}/A.tmp"); print(" inodes", os.stat(A.path).st_ino, os.stat(f"{D0}/A.tmp").st_ino); os.rename(f"{D0}/A.tmp", A.path)
    else:
        shutil.copy(f"{D0}/A.backup", A.path)    # cp over the same file: same inode
    print(" gone with the disk:", restore(T, "A", snap))
    A.open()
    print(" A after restore: id", A.id[:4], brief(A)["former"], "clock", brief(A)["clock"])
    if SC == "restore_good":
        for t in (B, C): xsync(A, t, f"rg{t.name}")
        for t in (B, C): print("  A <-", t.name, short(xsync(t, A, f"rg2{t.name}")))
        print(" A after re-sync: id", A.id[:4], brief(A)["former"])
        edits(A, 5)
    else:
        edits(A, 5)      # written on before syncing: the mistake
        for d in (B, C): edits(d, 3)
    print(mesh([A, B, C], "r1"))
    for d in (A, B, C): edits(d, 3)
    print(mesh([A, B, C], "r2"))
    print(" A former", brief(A)["former"], "peers", brief(A)["peers"])
    # forget A's former ids as the docs say
    for f in A.status()["former_ids"]:
        print(" forget", f[:4], A.j("SELECT sync_forget(?)", f))
    print(mesh([A, B, C], "r3"))
    final([A, B, C])
elif SC == "forget_active":
    # forget C although C still syncs
    print(" forget C on A:", A.j("SELECT sync_forget(?)", C.id))
    for d in (A, B, C): edits(d, 4)
    print(mesh([A, B, C], "f1"))
    print(" C id", C.id[:4], "C former", brief(C)["former"])
    # follow the message
    C.q1("SELECT sync_fork()"); print(" C forked ->", C.id[:4])
    print(mesh([A, B, C], "f2"))
    for d in (A, B, C): edits(d, 4)
    final([A, B, C])
elif SC == "forget_copyformer":
    # make N by cp of B; forget N's former id (which is B's live id): the docs say never do that
    B.close(); shutil.copy(B.path, f"{D0}/N.db"); B.open()
    N = Dev("N", D0, init=False); T.copy("B", "N")
    f = brief(N)["former"]; print(" N former", f)
    print(" forget on N:", N.j("SELECT sync_forget(?)", N.status()["former_ids"][0]))
    for d in (A, B, C, N): edits(d, 4)
    print(mesh([A, B, C, N], "g1"))
    print(" B id", B.id[:4])
    for d in (A, B, C, N): edits(d, 4)
    print(mesh([A, B, C, N], "g2"))
    print(" B follows the message: sync_fork ->", B.q1("SELECT sync_fork()")[:4])
    final([A, B, C, N])
