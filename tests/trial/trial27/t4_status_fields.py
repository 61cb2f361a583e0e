# sync_status() fields after compaction: peers[*].lacks counts ops compaction removed here
from synclib import *
A = fresh('t4_A.db'); B = fresh('t4_B.db')
q(A, "INSERT INTO t VALUES('r1','v0',NULL)"); send(A, B, full=True); send(B, A); compact(A); compact(B)
for i in range(10): q(A, "UPDATE t SET v=? WHERE id='r1'", f"v{i}")
print('A log ops before compaction', status(A)['log']['ops'])
s = status(B); print('B sees A lacks (before A sends):', [(p['device_id'][:6], p['lacks'], p['heard_from'], p['forgotten']) for p in s['peers']])
send(A, B); compact(B)
s = status(A); print('A peers before B answers:', [(p['device_id'][:6], p['lacks']) for p in s['peers']])
send(B, A); compact(A)
s = status(A); print('A peers after B answers:', [(p['device_id'][:6], p['lacks'], p['has']) for p in s['peers']])
print('A status keys', sorted(s.keys()), 'log', s['log'])
