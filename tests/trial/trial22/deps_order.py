# Finding: with sync_compact() after every import, a backup restored on two devices + a cp copy
# leads to a device refusing a bundle its peer just wrote ("deps are not in order" / "clock jumps").
# usage: deps_order.py [compact|auto1|auto2|none]
import sys, shutil; import os; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__))); import h; from h import *
mode = sys.argv[1] if len(sys.argv)>1 else 'compact'
h.COMPACT = mode=='compact'; h.AUTO = int(mode[4:]) if mode.startswith('auto') else None
ONLY = [x[5:] for x in sys.argv if x.startswith('only=')]
d=os.environ.get('WORK', '/tmp/t22')+'/deps_'+mode+('_'+ONLY[0].replace(',','_') if ONLY else ''); wipe(d)
if ONLY:
    _inn = h.inn
    def inn2(c, path, tag=''):
        h.COMPACT = tag in ONLY[0].split(',')
        return _inn(c, path, tag)
    h.inn = inn2
def reopen(n): D[n].close(); D[n]=dev(f'{d}/{n}.db', False)
D={'a':dev(d+'/a.db'),'b':dev(d+'/b.db')}
for i in range(1,5): D['a'].execute("INSERT INTO t VALUES(?, 'v0', 'w0')", (f'r{i}',))
xferp(D['a'],D['b'],'init',d)
for n in 'ab': D[n].close(); shutil.copy(f'{d}/{n}.db', f'{d}/{n}.bak'); D[n]=dev(f'{d}/{n}.db', False)  # backups
xferp(D['b'],D['a'],'1ba',d)
D['a'].close(); shutil.copy(d+'/a.db', d+'/c.db')                     # cp copy of a
r=raw(d+'/c.db'); r.execute("INSERT INTO t VALUES('r5','c5','c5')"); r.execute("UPDATE t SET v='c6' WHERE id='r4'"); r.close()
D['a']=dev(d+'/a.db',False); D['c']=dev(d+'/c.db',False)
D['a'].execute("UPDATE t SET v='a7' WHERE id='r4'")
xferp(D['a'],D['c'],'2ac',d); xferp(D['c'],D['b'],'3cb',d); xfer(D['b'],D['c'],'4bc',d)
D['b'].close(); shutil.copy(d+'/b.bak', d+'/b.db'); D['b']=dev(d+'/b.db',False)   # restore b
D['a'].close(); shutil.copy(d+'/a.bak', d+'/a.db')                                  # restore a
r=raw(d+'/a.db'); r.execute("UPDATE t SET v='a15' WHERE id='r2'"); r.close(); D['a']=dev(d+'/a.db',False)
D['b'].execute("DELETE FROM t WHERE id='r4'")
steps=[('b','a',1),('a','c',0),('c','b',0)]
for rnd in range(4):
    steps += [(x,y,1) for x in 'abc' for y in 'abc' if x!=y]
errs=0
for i,(x,y,ad) in enumerate(steps):
    p=f'{d}/m{i}{x}{y}.bundle'
    try:
        out(D[x],p,did(D[y]) if ad else None); h.inn(D[y],p,f'm{i}{x}{y}')
    except apsw.Error as e:
        errs+=1; print(f'  ERROR {x}->{y}:', str(e).replace(d,''))
print('errors:', errs)
check(D, [('c5','r5','v','c5'),('a15','r2','v','a15')])
