# Standalone repro: a backup put back and written on before it syncs (a new site + an inspection under it),
# in a fleet where three of four devices call sync_compact() after each sync round.
# Expected (README, docs/conflicts.md Constraints): every device ends with the same tables; a row whose
# parent is missing is held out on every device. Seen: the inspection stays in the table of some devices
# with no parent (PRAGMA foreign_key_check lists it) while others hold it out.
import apsw, os, json, shutil, subprocess, sys
W='/tmp/trial67/fk_orphan'; shutil.rmtree(W, ignore_errors=True); os.makedirs(W+'/folder')
LIB=os.environ.get('LIB', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'dist', 'sync0')); F=W+'/folder'
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from explore_schema import SCHEMA
q=lambda c,s,*p: c.execute(s,p).fetchall()
def j(c,s,*p): return json.loads(q(c,s,*p)[0][0])
def op(n):
    c=apsw.Connection(f'{W}/{n}.db'); c.enable_load_extension(True); c.load_extension(LIB)
    c.execute("PRAGMA foreign_keys=ON"); q(c,"SELECT sync_init()"); return c
names=['laptop','tab1','tab2','phone']; compacts={'laptop':1,'tab1':0,'tab2':1,'phone':1}
if os.environ.get('NOCOMPACT'): compacts={n:0 for n in names}
C={}
for n in names:
    C[n]=op(n); C[n].execute(SCHEMA)
    for t in ('sites','inspections','photos'): q(C[n],"SELECT sync_enable(?)",t)
def sync(n):
    r=j(C[n],"SELECT sync_folder_in(?)",F); q(C[n],"SELECT sync_folder_out(?)",F)
    if compacts[n]: q(C[n],"SELECT sync_compact()")
    return r
for r in range(2):
    for n in names: sync(n)
# tab2: backup, write two sites, sync; the others sync
C['tab2'].close(); subprocess.run(['sqlite3', W+'/tab2.db', f'.backup {W}/tab2.backup'], check=True); C['tab2']=op('tab2')
q(C['tab2'],"INSERT INTO sites VALUES('site-A','C1','A')"); q(C['tab2'],"INSERT INTO sites VALUES('site-B','C2','B')")
for n in ['tab2','laptop','phone','tab1','tab2']: sync(n)
# tab2 is put back to its backup and written on before it syncs
C['tab2'].close(); shutil.copyfile(W+'/tab2.backup', W+'/tab2.db'); C['tab2']=op('tab2')
q(C['tab2'],"INSERT INTO sites VALUES('site-S','C3','S')")
q(C['tab2'],"UPDATE sites SET name='S renamed' WHERE id='site-S'")
q(C['tab2'],"INSERT INTO inspections(id,site_id,inspector) VALUES('insp-I','site-S','ann')")
for r in range(4):
    for n in names: sync(n)
# README: forget the ids no database writes under any more
live=set(q(C[n],"SELECT sync_device_id()")[0][0] for n in names)
for p in j(C['laptop'],"SELECT sync_status()")['peers']:
    if p['device_id'] not in live and not p['forgotten']: print('forget', p['device_id'], q(C['laptop'],"SELECT sync_forget(?)",p['device_id']))
for r in range(4):
    for n in names: res=sync(n)
for n in names:
    c=C[n]; st=j(c,"SELECT sync_status()")
    print(f"{n:6} sites={[r[0] for r in q(c,'SELECT id FROM sites ORDER BY id')]} inspections={q(c,'SELECT id, site_id FROM inspections')}")
    print(f"       held out={q(c,'SELECT table_name, pk, reason FROM sync_conflicts WHERE kind=?','constraint')} fk_check={q(c,'PRAGMA foreign_key_check')} lost={q(c,'SELECT table_name,pk,kind,certain FROM sync_lost')} pending={st['pending']['ops']}")
