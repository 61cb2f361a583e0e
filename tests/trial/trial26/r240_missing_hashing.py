# shrunk from gen.py seed 240 (every); EXT=/path/to/sync0 WORK=/tmp/t26
import os, sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shrunk import *
setup('r240', auto=0, every=True)
new('d0')
new('d2')
new('d3')
cp('d2.db', 'bk0.bak')  # backup
W('d2', "INSERT INTO t VALUES('k1','d2@9.860') ON CONFLICT(id) DO UPDATE SET v=excluded.v; INSERT INTO t VALUES('k4','d2@9.474') ON CONFLICT(id) DO UPDATE SET v=excluded.v")
[(send('d2', p), send(p, 'd2')) for p in devs if p != 'd2']  # hub
W('d0', "INSERT INTO t VALUES('k5','d0@29.558') ON CONFLICT(id) DO UPDATE SET v=excluded.v")
[(send('d3', p), send(p, 'd3')) for p in devs if p != 'd3']  # hub
cp('bk0.bak', 'd2.db')  # put back over the same file
W('d2', "INSERT INTO t VALUES('k0','d2@39R.607') ON CONFLICT(id) DO UPDATE SET v=excluded.v")  # written on before it syncs
rounds(2); forget_former(); rounds(4)
show()
