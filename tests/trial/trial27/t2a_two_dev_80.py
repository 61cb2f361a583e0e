# README: two devices that sync and both compact after each of 80 edits of one row by one of them
# hold 2 row ops and 2 or 3 points in sync_log
import sys; from synclib import *
mode = sys.argv[1] if len(sys.argv) > 1 else 'one'
A = fresh('t2a_A.db'); B = fresh('t2a_B.db')
q(A, "INSERT INTO t VALUES('r1','v0',NULL)")
send(A, B, full=True); send(B, A)
for i in range(80):
    w = A if (mode == 'one' or i % 2 == 0) else B
    q(w, "UPDATE t SET v=? WHERE id='r1'", f"v{i+1}")
    send(A, B); send(B, A)
    compact(A); compact(B)
    if i in (0, 1, 2, 9, 39, 79):
        print(f"after edit {i+1}: A rowops={rowops(A)} floors={floors(A)} | B rowops={rowops(B)} floors={floors(B)}")
report({'A': A, 'B': B}, f't2a mode={mode}')
print(status(A)['stable'])
