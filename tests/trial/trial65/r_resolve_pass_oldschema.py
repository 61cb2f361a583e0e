"""README's resolve-all snippet on a device that has not added a column yet: the pass stops at the first
conflict with a value in the new column. Which resolutions stay?"""
import os, shutil
from fleet import *
W = '/tmp/trial65/r_pass'; shutil.rmtree(W, ignore_errors=True); os.makedirs(W)
a, b, c = (Device(n, f"{W}/{n}.db") for n in 'abc')
a.q("INSERT INTO sites(id,name) VALUES ('s1','one'),('s2','two'),('s3','three')")
a.q("INSERT INTO inspections(id,site_id,ref_code) VALUES ('i1','s1','R1')")
converge([a, b, c], W, 1)
for d in (a, c): d.q("ALTER TABLE inspections ADD COLUMN inspector TEXT")
a.q("UPDATE sites SET name='a1' WHERE id='s1'"); c.q("UPDATE sites SET name='c1' WHERE id='s1'")
a.q("UPDATE inspections SET inspector='ann' WHERE id='i1'"); c.q("UPDATE inspections SET inspector='cy' WHERE id='i1'")
a.q("UPDATE sites SET name='a3' WHERE id='s3'"); c.q("UPDATE sites SET name='c3' WHERE id='s3'")
converge([a, b, c], W, 2)
print('b open before', b.q("SELECT table_name, pk, columns FROM sync_conflicts WHERE NOT resolved ORDER BY id"))
try:
    print(b.q("SELECT sync_resolve(id, CASE WHEN local_op_id = winner_op_id THEN 'local' ELSE 'remote' END) FROM sync_conflicts WHERE NOT resolved"))
except Exception as e: print('pass ->', e)
print('b open after', b.q("SELECT table_name, pk, columns FROM sync_conflicts WHERE NOT resolved ORDER BY id"))
