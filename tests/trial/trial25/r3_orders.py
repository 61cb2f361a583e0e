# r3's schedule with other sync orders at the end
import sys, itertools
from lib import *
MODE["compact"] = "explicit"
for first in ["ab", "ba", "ca", "ac", "cb", "bc"]:
    for l in "abc":
        for s in ("", ".bak"):
            if os.path.exists(P(l) + s): os.remove(P(l) + s)
    for l in "abc": new(l)
    cp(P("b"), P("b") + ".bak"); write("b", "INSERT INTO t VALUES ('b1','b1')"); sync("b", "c")
    cp(P("b") + ".bak", P("b")); write("b", "INSERT INTO t VALUES ('W','W')"); write("a", "INSERT INTO t VALUES ('a1','a1')")
    sync(first[0], first[1])                 # the first exchange after the restore
    L = list("abc"); everyone(L, 2); forget_gone(L); everyone(L, 4)
    res = {l: [r[0] for r in conn(l).execute("SELECT id FROM t ORDER BY id")] for l in L}
    print(f"first sync {first[0]}->{first[1]}:", res, "ALIKE" if len({str(v) for v in res.values()}) == 1 else "APART")
