"""Held-out (constraint) records get different ids on different devices once a column was added
while the row was held out. usage: r_heldout_ids.py"""
import os, shutil, json
from fleet import *
def run(variant):
    W = f'/tmp/trial65/r_heldout/{variant}'; shutil.rmtree(W, ignore_errors=True); os.makedirs(W)
    a = Device('a', W + '/a.db'); b = Device('b', W + '/b.db'); c = Device('c', W + '/c.db')
    a.q("INSERT INTO sites(id,name) VALUES ('s1','one'),('s2','two')")
    converge([a, b, c], W, 1)
    if variant == 'a-migrates-first':
        a.q("ALTER TABLE inspections ADD COLUMN inspector TEXT")
    a.q("INSERT INTO inspections(id,site_id,ref_code,notes) VALUES ('x','s1','R1','under s1')")
    b.q("DELETE FROM sites WHERE id='s1'")
    converge([a, b, c], W, 2)
    print(variant, 'before upgrade', [(d.name, d.one("SELECT id FROM sync_conflicts WHERE NOT resolved")) for d in (a, b, c)])
    for d in (a, b, c):
        if variant != 'a-migrates-first' or d is not a:
            d.q("ALTER TABLE inspections ADD COLUMN inspector TEXT")
        converge([a, b, c], W, 1)
    converge([a, b, c], W, 2)
    for d in (a, b, c):
        print('  ', d.name, d.q("SELECT id, local_values FROM sync_conflicts WHERE NOT resolved"))
    print('   identical', compare([a, b, c], verbose=True))
    ids = {d.one("SELECT id FROM sync_conflicts WHERE NOT resolved") for d in (a, b, c)}
    if len(ids) > 1:
        # resolve on b with 'remote' (give the row up) and see if it closes everywhere
        cid = b.one("SELECT id FROM sync_conflicts WHERE NOT resolved")
        print('   b resolves its id remote ->', b.one("SELECT sync_resolve(?, 'remote')", (cid,)))
        converge([a, b, c], W, 2)
        print('   after: open', [(d.name, d.q("SELECT count(*) FROM sync_conflicts WHERE NOT resolved")[0][0]) for d in (a, b, c)], compare([a, b, c], verbose=False))
        # try resolving a's id on c
        cid = a.one("SELECT id FROM sync_conflicts WHERE NOT resolved")
for v in ('all-old', 'a-migrates-first'):
    run(v)
