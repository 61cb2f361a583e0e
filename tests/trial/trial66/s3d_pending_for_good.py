# Scenario 3d (shrunk from a random schedule, fuzz_restore.py seed 87): C is put back to a backup and written on
# before it syncs; everyone calls sync_compact() once after a round (README's rule of thumb); a 4th device D
# joins through the shared folder right after. End: an op pending for good on A, B, C; D alone holds a conflict.
import sys, json, os, shutil
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import *
d = fresh('s3d'); F = f'{d}/shared'; os.makedirs(F)
devs = [Dev(n, f'{d}/{n}.db') for n in 'ABCD']
A, B, C, D = devs
def P(*a): print(*a)
def sync(X, show=True):
    r = X.fin(F); X.fout(F)
    if r['skipped']: P(f'   {X.name} SKIPPED:', r['skipped'])
    if show: P(f'   {X.name} sync: applied={r["applied_count"]} lost={r["lost_count"]} discarded={r["discarded_count"]} pending={r["pending_count"]} conflicts={r["conflict_count"]}')
    return r
VARIANT = sys.argv[1] if len(sys.argv) > 1 else 'all'   # all: compact after every round; once: only the one mid-way; none
def compact_all(final=False):
    if VARIANT == 'none' or (final and VARIANT == 'once'): return
    for X in devs: X.q1("SELECT sync_compact()")
A.x("INSERT INTO borrowers(id, name) VALUES ('b1','Ann'),('b2','Bob')")
A.x("INSERT INTO items(id, tag, name) VALUES ('i1','T-1','Drill'),('i2','T-2','Camera'),('i3','T-3','Tripod')")
sync(A); sync(C)
P('== backup of C'); C.close(); shutil.copy(C.path, f'{d}/C.backup'); C.open()
C.x("UPDATE borrowers SET name='C7' WHERE id='b1'"); C.x("UPDATE borrowers SET name='C9' WHERE id='b1'"); C.x("UPDATE items SET name='C10' WHERE id='i1'")
sync(A); sync(C); sync(A)
P('== everyone compacts after the round'); compact_all()
sync(C)
P('== C put back to its backup, written on before it syncs')
C.close(); shutil.copyfile(f'{d}/C.backup', C.path); C.open()
C.x("UPDATE items SET name='C16' WHERE id='i1'"); C.x("UPDATE items SET name='C16' WHERE id='i2'"); C.x("UPDATE borrowers SET name='C17' WHERE id='b1'"); C.x("UPDATE items SET name='C18' WHERE id='i1'")
sync(C)
P('== D syncs for the first time, then renames i1'); sync(D)
D.x("UPDATE items SET name='D28' WHERE id='i1'")
P('  D id', D.id)
for rnd in range(3):
    P(f'-- round {rnd}'); [sync(X) for X in devs]; compact_all(True)
live = {X.q1("SELECT sync_device_id()") for X in devs}
for (i, f) in A.x("SELECT value ->> '$.device_id', value ->> '$.forgotten' FROM json_each(sync_status() -> '$.peers')"):
    if i not in live and not f and not os.environ.get('NOFORGET'): P('  forget', i, A.q1("SELECT sync_forget(?)", (i,)))
for rnd in range(3):
    P(f'-- round {3+rnd}'); [sync(X) for X in devs]; compact_all(True)
compare(devs, label='s3d')
for X in devs:
    P(f'  {X.name}: items', X.x("SELECT id, name FROM items"), 'b1', X.x("SELECT name FROM borrowers WHERE id='b1'"),
      'lost', X.x("SELECT table_name, pk, cell_values FROM sync_lost"))
    P(f'      pending', X.status()['pending'], 'open', X.x("SELECT local_values, remote_values FROM sync_conflicts WHERE NOT resolved"))
P('== who is the pending device?')
if not A.status()['pending']['devices']:
    P('  none: every device holds every op applied'); sys.exit(0)
pend = list(A.status()['pending']['devices'].keys())[0]
for X in devs: P(f'  {X.name}: id {X.q1("SELECT sync_device_id()")[:8]} former {[f[:8] for f in X.status()["former_ids"]]}')
P('  pending device', pend[:8])
P('  D log of it:', D.x("SELECT substr(device,1,8), seq, \"table\", kind, pk, \"values\" FROM sync_log WHERE device=?", (pend,)))
P('  A log of it:', A.x("SELECT substr(device,1,8), seq, \"table\", kind, pk, \"values\" FROM sync_log WHERE device=?", (pend,)))
P('  C18 anywhere in A/B/C tables, conflicts, sync_lost?', [(X.name, X.q1("SELECT count(*) FROM items WHERE name='C18'"), X.q1("SELECT count(*) FROM sync_conflicts WHERE instr(local_values,'C18') OR instr(remote_values,'C18')"), X.q1("SELECT count(*) FROM sync_lost WHERE instr(cell_values,'C18')")) for X in devs])
for X in (A, D): P(f'  {X.name} stable:', {k[:8]: v for k, v in X.status()['stable'].items()})
if VARIANT == 'all':
    P('== D resolves its open conflict by choosing C18, then D writes more; 3 rounds')
    P('  A records with C18:', A.x("SELECT resolved, kind, local_values, remote_values FROM sync_conflicts WHERE instr(local_values,'C18') OR instr(remote_values,'C18')"))
    cid, side = D.x("SELECT id, CASE WHEN instr(local_values,'C18') THEN 'local' ELSE 'remote' END FROM sync_conflicts WHERE NOT resolved")[0]
    if os.environ.get('NORESOLVE'): P('  (D does not resolve)')
    else: P('  D resolve', D.q1("SELECT sync_resolve(?, ?)", (cid, side)), D.x("SELECT name FROM items WHERE id='i1'"))
    D.x("INSERT INTO loans(id,item_id,borrower_id) VALUES ('lD','i2','b2')")
    for rnd in range(3):
        [sync(X, show=True) for X in devs]; compact_all(True)
    compare(devs, label='s3d after D resolved')
    P('  D status peers:', [(p['device_id'][:8], p['heard_from'], p['lacks']) for p in D.status()['peers']])
    P('  A status peers:', [(p['device_id'][:8], p['heard_from'], p['lacks']) for p in A.status()['peers']])
    P('  D log ops by D:', D.x("SELECT seq, \"table\", kind, pk FROM sync_log WHERE device=?", (D.id,)))
    P('  A log ops by D:', A.x("SELECT seq, \"table\", kind, pk FROM sync_log WHERE device=?", (D.id,)))
    for X in devs: P(f'  {X.name}: i1', X.x("SELECT name FROM items WHERE id='i1'"), 'loan lD', X.x("SELECT id FROM loans"), 'pending', X.status()['pending']['ops'])
    P('== D sends A a full bundle; then D forks and syncs again')
    p = f'{d}/D_full.bundle'; D.out(p)
    try: P('  A <- D full:', A.report(A.bin(p)))
    except Exception as e: P('  A <- D full ERROR:', str(e)[:300])
    P('  D fork:', D.q1("SELECT sync_fork()"))
    for rnd in range(2):
        [sync(X, show=False) for X in devs]
    r = A.fin(F); P('  A skipped after fork:', [s['error'][:160] for s in r['skipped']])
    compare(devs, label='s3d after full bundle and fork')
