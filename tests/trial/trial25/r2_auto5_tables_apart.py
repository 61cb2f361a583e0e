# compact_every 5: after a backup put back and two cp copies written on without the extension,
# one device drops a write (listing it in sync_lost) that the other four keep in their tables, for good.
from lib import *
MODE["auto"] = 5
for l in "abc": new(l)
write("c", "INSERT INTO t VALUES ('c1','c1')")
cp(P("a"), P("d")); write("d", "INSERT INTO t VALUES ('d1','d1')", ext=False)   # cp copy of a, written without the extension
cp(P("b"), P("b") + ".bak")                                                      # backup of b (closed)
write("c", "UPDATE t SET v='c1-upd' WHERE id='c1'")
write("b", "INSERT INTO t VALUES ('b1','b1')", ext=False)
cp(P("b"), P("e")); write("e", "INSERT INTO t VALUES ('e1','e1')", ext=False)   # cp copy of b, written without the extension
sync("b", "c"); sync("c", "d")
cp(P("b") + ".bak", P("b"))                                                      # b put back, written on before syncing
write("b", "INSERT INTO t VALUES ('W','written on put-back b')")
sync("e", "a")
write("b", "INSERT INTO t VALUES ('b2','b2')")
sync("b", "c")
L = list("abcde")
everyone(L, 2); forget_gone(L); everyone(L, 4)
show(L)
