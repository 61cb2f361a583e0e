# Three devices, sync_compact() after every import. b's backup is put back and written on
# (without the extension) before b syncs; a writes one row (also without the extension).
# After all-pairs syncing, a keeps b's write W in its table while b and c drop it (listed in sync_lost).
import sys
from lib import *
MODE["compact"] = sys.argv[1] if len(sys.argv) > 1 else "explicit"   # 'explicit' or 'none'
EXT = (sys.argv[2] == "ext") if len(sys.argv) > 2 else False
for l in "abc": new(l)
cp(P("b"), P("b") + ".bak")                                   # backup of b, taken while closed
write("b", "INSERT INTO t VALUES ('b1','b1')")
sync("b", "c")
cp(P("b") + ".bak", P("b"))                                   # b put back, then written on before it syncs
write("b", "INSERT INTO t VALUES ('W','written on put-back b')", ext=EXT)
write("a", "INSERT INTO t VALUES ('a1','a1')", ext=EXT)
L = list("abc")
everyone(L, 2); forget_gone(L); everyone(L, 4)
show(L)
