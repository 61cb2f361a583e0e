# A write made on a backup put back (before it synced) reaches two other devices, then ends in
# no table, no sync_conflicts row and no sync_lost row on any device.  sync_compact() after every import.
from lib import *
MODE["compact"] = "explicit"
for l in "abc": new(l)
sync("a", "b")
cp(P("b"), P("b") + ".bak"); cp(P("c"), P("c") + ".bak")          # backups of b and c, taken while closed
write("b", "INSERT INTO t VALUES ('b1','b1')")
sync("b", "a")
cp(P("b") + ".bak", P("b"))                                        # b put back ...
write("b", "INSERT INTO t VALUES ('W','written on the put-back b')")   # ... and written on before syncing
sync("b", "c")                                                     # W reaches c
sync("a", "c")
cp(P("b") + ".bak", P("b"))                                        # b put back a second time
write("b", "INSERT INTO t VALUES ('b2','b2')")
new("d"); sync("a", "d", full=True)                                # d set up from a's full bundle
sync("c", "d")                                                     # W reaches d
print("d holds W before c is put back:", conn("d").execute("SELECT * FROM t WHERE id='W'").fetchall())
cp(P("c") + ".bak", P("c"))                                        # c put back
write("c", "INSERT INTO t VALUES ('c1','c1')")
L = list("abcd")
everyone(L, 2); forget_gone(L); everyone(L, 3)
show(L, watch=("written on the put-back b",))
