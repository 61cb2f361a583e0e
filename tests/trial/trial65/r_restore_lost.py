"""Restore-from-backup mistake (write before syncing) in a fleet that compacts once per round (the README's
rule of thumb): the restored device's new writes vanish from every table; only sync_lost on that device lists them."""
import os, shutil, json, subprocess
from fleet import *
W = '/tmp/trial65/r_restore_lost'; shutil.rmtree(W, ignore_errors=True); os.makedirs(W + '/folder'); F = W + '/folder'
a, b, c = (Device(n, f"{W}/{n}.db") for n in ('lap', 'tab', 'desk')); devs = [a, b, c]
a.q("INSERT INTO sites(id,name) VALUES ('s1','one'),('s2','two')")
def rnd(n=2):
    for _ in range(n):
        for d in devs: d.fin(F); d.fout(F)
rnd()
c.close(); shutil.copy(W + '/desk.db', W + '/desk.bak'); c = Device('desk', W + '/desk.db', create=False); c.q("SELECT sync_init()"); devs[2] = c
c.q("INSERT INTO inspections(id,site_id,ref_code,notes) VALUES ('d1','s1','R-D1','desk before disk died')")
rnd()
for d in devs: d.q("SELECT sync_compact()")      # once after a round of syncs, as the README suggests
rnd()
c.close(); subprocess.run(['cp', W + '/desk.bak', W + '/desk.db'], check=True)
c = Device('desk', W + '/desk.db', create=False); c.q("SELECT sync_init()"); devs[2] = c
c.q("INSERT INTO inspections(id,site_id,ref_code,notes) VALUES ('d2','s2','R-D2','typed on restored desk')")
c.q("UPDATE sites SET name='renamed on restored desk' WHERE id='s1'")
for _ in range(3):
    for d in devs:
        r = d.fin(F); o = d.fout(F)
        if d is c or r['applied_count']:
            print(f"  {d.name} fin: imported={r['imported']} applied={r['applied_count']} conflicts={r['conflict_count']} pending={r['pending_count']} lost={r.get('lost_count')}")
print('converged', compare(devs))
for d in devs:
    print(d.name, d.q("SELECT id, notes FROM inspections ORDER BY 1"), d.q("SELECT name FROM sites WHERE id='s1'"), 'lost_writes', d.status()['lost_writes'])
print('sync_lost on desk:', c.q("SELECT table_name, pk, kind, cell_values, certain, reason FROM sync_lost"))
