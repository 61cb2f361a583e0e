# random schedule: edits, markers, syncs, compaction, backups restored, cp copies with plain writes, forget
import random, sys, subprocess, traceback
from lib import *
seed=int(sys.argv[1]) if len(sys.argv)>1 else 1
STEPS=int(sys.argv[2]) if len(sys.argv)>2 else 40
SYNC_FIRST=float(sys.argv[3]) if len(sys.argv)>3 else 0.5   # prob. a restored device syncs before writing
AUTO=int(sys.argv[4]) if len(sys.argv)>4 else 0
EXPL=int(sys.argv[5]) if len(sys.argv)>5 else 0
random.seed(seed)
W=os.path.join(os.environ.get('WORK', '/tmp/trial12'), f's4_{seed}'); shutil.rmtree(W,ignore_errors=True); os.makedirs(W)
LOG=[]; ACTS=[]
def log(*a): LOG.append(' '.join(map(str,a)))
devs=[Dev(n,f'{W}/{n}.db') for n in 'ABC']
if AUTO:
    for d in devs: d.x("INSERT OR REPLACE INTO _sync_state(name,value) VALUES ('compact_every',?)",AUTO)
for i in range(8): devs[0].x("INSERT INTO notes(id,title,body) VALUES (?,?,?)", f'n{i}', f't{i}', 'b')
full_mesh(devs,1)
markers=[]; mk=0
backups={}  # name -> list of (path, id at backup)
forgotten=set(); errors=[]; legit=set()
def marker(d):
    global mk
    mk+=1; m=f'm{mk}{d.name}'; d.x("INSERT INTO notes(id,title) VALUES (?,?)", m, 'marker'); markers.append(m); log(d.name,'marker',m); ACTS.append(('marker',d.name,m))
def edit(d):
    i=random.randrange(10); r=random.random()
    if r<0.6: v=f'{d.name}{random.randrange(999)}'; d.x("UPDATE notes SET title=? WHERE id=?", v, f'n{i}'); ACTS.append(('edit',d.name,[('title',i,v)]))
    elif r<0.8: v=f'{d.name}{random.randrange(999)}'; d.x("UPDATE notes SET body=? WHERE id=?", v, f'n{i}'); ACTS.append(('edit',d.name,[('body',i,v)]))
    elif r<0.9: d.x("DELETE FROM notes WHERE id=?", f'n{i}'); ACTS.append(('edit',d.name,[('del',i,None)]))
    else: d.x("INSERT OR REPLACE INTO notes(id,title) VALUES (?,?)", f'n{i}', f're{d.name}'); ACTS.append(('edit',d.name,[('repl',i,f're{d.name}')]))
def live_ids(): return {d.id for d in devs}
def do_forget(d, cand):
    for x in cand:
        if x in live_ids() or x in forgotten: continue
        # only ids known here
        try:
            r=J(d.c,"SELECT sync_forget(?)",x); forgotten.add(x); log(d.name,'forget',x[:6],r)
        except Exception as e: log(d.name,'forget err',x[:6],e)
def safe(f,*a,what=''):
    try: return f(*a)
    except Exception as e:
        errors.append((what,str(e)[:300])); log('ERROR',what,str(e)[:300]); return None
def dosync(a,b):
    ia,ib=a.id,b.id
    def imp(src,dst):
        bl=src.out(dst)
        try: return dst.inn(bl)
        except Exception as e:
            if 'as forgotten' in str(e):
                log(dst.name,'refused as forgotten -> sync_fork', q1(dst.c,"SELECT sync_fork()")[:6])
                return dst.inn(bl)
            raise
    r1=safe(lambda: imp(a,b), what=f'{a.name}->{b.name}')
    r2=safe(lambda: imp(b,a), what=f'{b.name}->{a.name}')
    if EXPL:
        for d in (a,b): log(d.name,'compact',safe(d.compact,what=f'compact {d.name}'))
    log('sync',a.name,b.name, r1 and (r1['applied_count'],r1['pending_count'],r1.get('discarded_count')), r2 and (r2['applied_count'],r2['pending_count'],r2.get('discarded_count')))
    for d,old in ((a,ia),(b,ib)):
        if d.id!=old:
            log(d.name,'forked',old[:6],'->',d.id[:6])
            if getattr(d,'restored_from',None):
                do_forget(d, set(d.status()['former_ids'])|{d.restored_from})
                d.restored_from=None
pending_restore=set()
for step in range(STEPS):
    r=random.random(); d=random.choice(devs)
    if d.name in pending_restore and random.random()<SYNC_FIRST:
        # README order: sync with each other device before writing
        ACTS.append(('syncall',d.name))
        for o in devs:
            if o is not d: dosync(d,o)
        pending_restore.discard(d.name)
    if r<0.35:
        for _ in range(3): edit(d)
        marker(d)
    elif r<0.6:
        a,b=random.sample(devs,2); dosync(a,b); ACTS.append(('sync',a.name,b.name))
    elif r<0.72:
        log(d.name,'compact',safe(d.compact,what=f'compact {d.name}')); ACTS.append(('compact',d.name))
    elif r<0.82:
        bp=f'{W}/{d.name}.bak{step}'; m='vac' if random.random()<0.5 else 'cp'; q(d.c,"VACUUM INTO ?",bp) if m=='vac' else shutil.copyfile(d.path,bp); ACTS.append(('backup',d.name,f'{d.name}.bak{step}',m))
        backups.setdefault(d.name,[]).append((bp,d.id)); log(d.name,'backup',bp)
    elif r<0.9 and backups.get(d.name):
        bp,bid=random.choice(backups[d.name]); cur=d.id
        mine=set(r[0] for r in q(d.c,"SELECT id FROM notes WHERE title IN ('marker','plain')"))
        others=set()
        for o in devs:
            if o is not d: others|=set(r[0] for r in q(o.c,"SELECT id FROM notes"))
        bc=apsw.Connection('file:'+bp+'?mode=ro',flags=apsw.SQLITE_OPEN_URI|apsw.SQLITE_OPEN_READONLY); others|=set(r[0] for r in q(bc,"SELECT id FROM notes")); bc.close()
        gone=mine-others; legit.update(gone); log(d.name,'restore loses unsent',sorted(gone))
        d.c.close(); shutil.copyfile(bp,d.path); d.c=conn(d.path); d.restored_from=cur
        pending_restore.add(d.name); ACTS.append(('restore',d.name,os.path.basename(bp))); log(d.name,'RESTORE',bp,'id',d.id[:6],'was',cur[:6])
    elif r<0.95 and len(devs)<5:
        name='DEFGH'[len(devs)-3]; dst=f'{W}/{name}.db'; shutil.copyfile(d.path,dst); pm=None
        if random.random()<0.5:
            p=apsw.Connection(dst); m=f'p{step}{name}'; p.execute("INSERT INTO notes(id,title) VALUES (?,'plain')",(m,)); p.close(); markers.append(m); log(name,'plain marker',m); pm=m
        n=Dev(name,dst,new=False)
        if AUTO: n.x("INSERT OR REPLACE INTO _sync_state(name,value) VALUES ('compact_every',?)",AUTO)
        devs.append(n); ACTS.append(('copy',d.name,name,pm)); log(name,'COPY of',d.name,'id',n.id[:6])
for rnd in range(3):
    for i in range(len(devs)):
        for j in range(i+1,len(devs)): dosync(devs[i],devs[j])
    for d in devs: safe(d.compact,what='final compact')
for i in range(len(devs)):
    for j in range(i+1,len(devs)): dosync(devs[i],devs[j])
ok,ss=compare(devs)
lost=set()
for d in devs:
    for l in ss[d.name]['lost']: lost.add(json.loads(l[3])['id'])
present=set(r[0] for r in ss[devs[0].name]['rows'])
silently=[m for m in markers if m not in present and m not in lost and m not in legit]
print(f"seed {seed}: ok={ok} devices={len(devs)} markers={len(markers)} missing_silently={silently} lost_listed={sorted(lost & set(markers))} errors={len(errors)}")
for e in errors[:6]: print("  ERR",e)
open(f'{W}/log.txt','w').write('\n'.join(LOG))

json.dump(ACTS,open(f'{W}/acts.json','w'))
if ok:
    for src in devs:
        L=Dev('L'+src.name,f'{W}/L{src.name}.db')
        try: r=L.inn(src.out(None))
        except Exception as e: print('  late join from',src.name,'ERROR',str(e)[:200]); continue
        a,b=state(L),state(src)
        if a['rows']!=b['rows'] or a['conf']!=b['conf'] or a['pending']['ops']:
            print(f'  LATE JOIN from {src.name} differs: rows {len(a["rows"])} vs {len(b["rows"])}, conf {len(a["conf"])} vs {len(b["conf"])}, pending {a["pending"]["ops"]}')
            print('    conf only joiner', [x for x in a['conf'] if x not in b['conf']][:2]); print('    conf only src', [x for x in b['conf'] if x not in a['conf']][:2])
            print('    rows only joiner', [x for x in a['rows'] if x not in b['rows']][:3], 'only src', [x for x in b['rows'] if x not in a['rows']][:3])
        L.c.close()
