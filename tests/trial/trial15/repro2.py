# repro2: a cp copy N of B written on by a connection without the extension; B writes the same seq;
# peers compact; N loads the extension (forks) and deletes the row B updated meanwhile (N never saw B's update).
# Expected (conflicts.md): a delete against a concurrent write is a conflict -> a record in sync_conflicts.
import os, shutil, apsw, sys
from synclib import *
D0 = os.environ.get("WORK", "/tmp/trial15") + "/repro2"; shutil.rmtree(D0, ignore_errors=True); os.makedirs(D0)
A, B, C = Dev("A", D0), Dev("B", D0), Dev("C", D0)
A.q("INSERT INTO notes(id,title,body,n) VALUES ('r','R','init',0),('s','S','init',0)")
def mesh(ds, tag, each=True):
    for s in ds:
        for t in ds:
            if s is not t:
                sync(s, t, f"{tag}{s.name}{t.name}")
                if each: t.j("SELECT sync_compact()")
mesh([A, B, C], "w0"); mesh([A, B, C], "w1")
B.close(); shutil.copy(B.path, f"{D0}/N.db"); B.open()
raw = apsw.Connection(f"{D0}/N.db")                      # no extension loaded: writes under B's id
raw.execute("UPDATE notes SET body='N-first' WHERE id='s'"); raw.close()
B.q("UPDATE notes SET body='B-update' WHERE id='r'")     # B's op at the same seq
mesh([A, B, C], "c0")
N = Dev("N", D0, init=False)
print("N forked:", N.id[:4], "former", brief(N)["former"], "N sees r as", N.q("SELECT * FROM notes WHERE id='r'"))
N.q("DELETE FROM notes WHERE id='r'")                     # N never saw B-update
for k in range(3): mesh([A, B, C, N], f"f{k}")
for d in (A, B, C, N):
    print(d.name, d.rows(), "conflicts on r:", d.q("SELECT local_values, remote_values, resolved FROM sync_conflict_records WHERE pk='{\"id\":\"r\"}'"), "lost:", [l[3:6] for l in d.lost()])
print("B's update in sync_log:", A.q("SELECT substr(device,1,4), seq, kind, \"values\" FROM sync_log WHERE pk='{\"id\":\"r\"}'"))
