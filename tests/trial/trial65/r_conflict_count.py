"""conflict_count of one import vs conflicts actually open: tab1 renames a site 6 times (syncing via
folder each time), tab2 renamed it once offline; tab2's folder_in reports conflict_count 6."""
import os, shutil
from fleet import *
W = '/tmp/trial65/r_cc'; shutil.rmtree(W, ignore_errors=True); os.makedirs(W + '/folder'); F = W + '/folder'
a = Device('a', W + '/a.db'); b = Device('b', W + '/b.db')
a.q("INSERT INTO sites(id,name) VALUES ('s1','one')")
for d in (a, b, a, b): d.fin(F); d.fout(F)
b.q("UPDATE sites SET name='b offline' WHERE id='s1'")
for k in range(6):
    a.q("UPDATE sites SET name=? WHERE id='s1'", (f"a name {k}",)); a.fout(F)
r = b.fin(F)
print('folder_in: imported', r['imported'], 'conflict_count', r['conflict_count'], '| open now', b.q("SELECT count(*) FROM sync_conflicts WHERE NOT resolved"), '| status open_conflicts', b.status()['open_conflicts'])
print(b.q("SELECT id, local_values, remote_values, resolved FROM sync_conflicts"))
