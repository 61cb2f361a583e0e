# sync_compact() after every import (or compact_every 1). b's backup is put back and written on without the
# extension before it syncs; then a cp copy of b (device d) is written on without the extension.
# Imports are refused ("... is missing (hashing it)", "UNIQUE constraint failed: _sync_devices.id",
# "its clock goes backwards"), one op stays pending on a for good, and the tables end apart.
import sys
from lib import *
mode = sys.argv[1] if len(sys.argv) > 1 else "explicit"
if mode == "explicit": MODE["compact"] = "explicit"
elif mode.startswith("auto"): MODE["auto"] = int(mode[4:])
for l in "abc": new(l)
cp(P("b"), P("b") + ".bak")                                       # backup of b (closed)
write("b", "INSERT INTO t VALUES ('b1','b1')")
write("b", "INSERT INTO t VALUES ('b2','b2')", ext=False)
sync("b", "c")
cp(P("a"), P("a") + ".bak1"); cp(P("a") + ".bak1", P("a"))       # (a backup of a taken and put back: no change)
write("a", "INSERT INTO t VALUES ('a1','a1')", ext=False)
cp(P("b") + ".bak", P("b"))                                       # b put back ...
write("b", "INSERT INTO t VALUES ('W','written on put-back b')", ext=False)   # ... and written on without the extension
sync("a", "b")
cp(P("a"), P("a") + ".bak2")
cp(P("b"), P("d"))                                                # cp copy of b becomes device d ...
write("d", "INSERT INTO t VALUES ('d1','d1')", ext=False)         # ... written on without the extension
cp(P("a") + ".bak2", P("a"))
write("a", "INSERT INTO t VALUES ('a2','a2')")
L = list("abcd")
everyone(L, 2); forget_gone(L); everyone(L, 4)
show(L)
