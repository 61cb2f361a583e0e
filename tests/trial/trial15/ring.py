# ring: A->B->C->A only (a USB stick passed around); does `stable` ever grow, does compaction ever remove?
# ROUNDS=n passes (8 by default); MESH=1: every device sends to every other instead
import os, shutil
from synclib import *
D0 = os.environ.get("WORK", "/tmp/trial15") + "/ring"; shutil.rmtree(D0, ignore_errors=True); os.makedirs(D0)
A, B, C = ds = [Dev(n, D0) for n in "ABC"]
A.q("INSERT INTO notes(id,title) VALUES ('x','X')")
for rd in range(int(os.environ.get("ROUNDS", 8))):
    for d in ds: d.q("UPDATE notes SET title=? WHERE id='x'", f"{d.name}{rd}")
    for i, s in enumerate(ds):
        for t in (ds if os.environ.get("MESH") else [ds[(i + 1) % 3]]):
            if t is not s: sync(s, t, f"{rd}{s.name}{t.name}")
    cs = [d.j("SELECT sync_compact()") for d in ds]
    print(rd, "stable on A:", brief(A)["stable"], "compact:", cs, "log ops:", [brief(d)["log_ops"] for d in ds])
print("peers of A:", brief(A)["peers"])
compare(ds)
for rd in range(2):
    for i, s in enumerate(ds):
        t = ds[(i + 1) % 3]; sync(s, t, f"x{rd}{s.name}")
print("after 2 quiet passes: log ops", [brief(d)["log_ops"] for d in ds], "clocks equal:", len({json.dumps(d.status()["clock"], sort_keys=True) for d in ds}) == 1)
compare(ds)
for d in ds: print(d.name, d.open_conf())
