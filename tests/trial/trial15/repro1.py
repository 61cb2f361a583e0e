# repro1: a backup put back over A (same inode, cp) and written on before syncing; every device
# calls sync_compact() after each import. Ends with A different from B and C for good.
import os, shutil
from synclib import *
D0 = os.environ.get("WORK", "/tmp/trial15") + "/repro1"; shutil.rmtree(D0, ignore_errors=True); os.makedirs(D0)
A, B, C = Dev("A", D0), Dev("B", D0), Dev("C", D0)
A.q("INSERT INTO notes(id,title,body,n) VALUES ('x','X','xb',1),('y','Y','yb',2),('z','Z','zb',3)")
def step(s, t, tag, show=True):
    r = sync(s, t, tag); c = t.j("SELECT sync_compact()")
    if show: print(f"  {s.name}->{t.name}", {k: r[k] for k in ("applied_count","duplicate_count","discarded_count","pending_count")}, "compact", c, "lost", len(t.lost()))
def mesh(tag, show=True):
    for s in (A, B, C):
        for t in (A, B, C):
            if s is not t: step(s, t, f"{tag}{s.name}{t.name}", show)
print("mesh w0"); mesh("w0")
A.close(); shutil.copy(A.path, f"{D0}/A.backup"); A.open()
print("A (original) deletes x, seq", A.q1("SELECT max(seq) FROM sync_log WHERE device=sync_device_id()") + 1)
A.q("DELETE FROM notes WHERE id='x'")
print("mesh b0"); mesh("b0"); print("mesh b1"); mesh("b1")
A.close(); shutil.copy(f"{D0}/A.backup", A.path); A.open()
print("A put back; id", A.id[:4], "clock", brief(A)["clock"])
A.q("UPDATE notes SET title='R1' WHERE id='z'"); A.q("UPDATE notes SET n=99 WHERE id='y'"); A.q("INSERT INTO notes(id,title) VALUES('w','W')")
print("A's log now:", A.q("SELECT substr(device,1,4), seq, \"table\", kind, pk, \"values\" FROM sync_log WHERE device=sync_device_id() AND seq>3"))
for k in range(3): print("mesh r", k); mesh(f"r{k}")
for f in A.status()["former_ids"]: print("A forgets its former id", A.j("SELECT sync_forget(?)", f))
for k in range(3): mesh(f"f{k}", show=False)
for d in (A, B, C):
    print(d.name, d.id[:4], d.rows(), "pending", pend(d)); 
    for l in d.lost(): print("   sync_lost:", l[:7])
compare([A, B, C])
