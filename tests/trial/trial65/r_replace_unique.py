"""INSERT OR REPLACE that removes a *different* row via the UNIQUE ref_code (recursive_triggers off, SQLite's default)."""
import os, shutil
from fleet import *
W = '/tmp/trial65/r_replace'; shutil.rmtree(W, ignore_errors=True); os.makedirs(W)
a, b = Device('a', W + '/a.db'), Device('b', W + '/b.db')
a.q("INSERT INTO sites(id,name) VALUES ('s1','one')"); a.q("INSERT INTO inspections(id,site_id,ref_code,notes) VALUES ('old','s1','R1','old row')")
converge([a, b], W, 1)
a.q("INSERT OR REPLACE INTO inspections(id,site_id,ref_code,notes) VALUES ('new','s1','R1','replacement row')")
converge([a, b], W, 2)
print('a', a.q("SELECT id, notes FROM inspections")); print('b', b.q("SELECT id, notes FROM inspections"))
print('converged', compare([a, b], verbose=False), 'b held out', b.q("SELECT pk, reason FROM sync_conflicts WHERE NOT resolved"), 'a held out', a.q("SELECT pk, reason FROM sync_conflicts WHERE NOT resolved"))
