"""desk deletes an inspection (ON DELETE CASCADE removes its findings); tab1 meanwhile edits the inspection.
The inspection comes back (edit vs delete conflict recorded) but its findings stay deleted with no conflict record."""
import os, shutil
from fleet import *
W = '/tmp/trial65/r_cascade'; shutil.rmtree(W, ignore_errors=True); os.makedirs(W)
desk, tab1 = Device('desk', W + '/desk.db'), Device('tab1', W + '/tab1.db')
desk.q("INSERT INTO sites(id,name) VALUES ('s1','one')")
desk.q("INSERT INTO inspections(id,site_id,ref_code) VALUES ('i1','s1','R1')")
desk.q("INSERT INTO findings(id,inspection_id,text) VALUES ('f1','i1','cracked beam'),('f2','i1','loose rail')")
converge([desk, tab1], W, 1)
desk.q("DELETE FROM inspections WHERE id='i1'")                       # cascades f1, f2 locally
tab1.q("UPDATE inspections SET notes='re-inspected, keep this' WHERE id='i1'")
converge([desk, tab1], W, 2)
for d in (desk, tab1):
    print(d.name, 'inspections', d.q("SELECT id, notes FROM inspections"), 'findings', d.q("SELECT * FROM findings"))
print('open records:', tab1.q("SELECT table_name, pk, kind, local_values, remote_values FROM sync_conflicts WHERE NOT resolved"))
print('sync_lost:', tab1.q("SELECT count(*) FROM sync_lost"))
print('findings ops in sync_log:', tab1.q("SELECT kind, pk FROM sync_log WHERE \"table\"='findings'"))
cid = tab1.one("SELECT id FROM sync_conflicts WHERE NOT resolved")
print("tab1 resolves keeping the inspection ('local'):", tab1.one("SELECT sync_resolve(?, 'local')", (cid,)))
converge([desk, tab1], W, 1)
print('after resolve findings:', tab1.q("SELECT * FROM findings"), desk.q("SELECT * FROM findings"))
