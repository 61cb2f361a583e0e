"""Folder-only sync: a device on the old schema gets ops that write a column it lacks (or a table it lacks,
or a column declared otherwise). What tells it so? sync_bundle_in's result has waiting_for_schema /
declared_otherwise; sync_folder_in's result has neither."""
import os, shutil, json
from fleet import *
W = '/tmp/trial65/r_folder_col'; shutil.rmtree(W, ignore_errors=True); os.makedirs(W + '/folder'); F = W + '/folder'
a, b = Device('a', W + '/a.db'), Device('b', W + '/b.db')
a.q("INSERT INTO sites(id,name) VALUES ('s1','one')")
for d in (a, b, a, b): d.fin(F); d.fout(F)
a.q("ALTER TABLE sites ADD COLUMN phone TEXT"); a.q("UPDATE sites SET phone='555-1234' WHERE id='s1'")
a.q("ALTER TABLE inspections ADD COLUMN extra INTEGER"); b.q("ALTER TABLE inspections ADD COLUMN extra TEXT")
a.q("INSERT INTO inspections(id,site_id,ref_code,extra) VALUES ('i1','s1','R1',7)")
a.fout(F)
r = b.fin(F)
print('b sync_folder_in result keys:', sorted(r))
print('b sync_status waiting_for_schema:', b.status()['waiting_for_schema'])
print('b sync_waiting:', b.q("SELECT * FROM sync_waiting"))
print('b sites:', b.q("SELECT * FROM sites"), 'inspections', b.q("SELECT id, extra FROM inspections"))
