# shrunk from gen.py seed 588 (auto2); EXT=/path/to/sync0 WORK=/tmp/t26
import os, sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shrunk import *
setup('r588', auto=2, every=False)
new('d0')
new('d2')
new('d3')
cp('d0.db', 'd4.db'); devs.append('d4')  # cp copy
W('d4', "INSERT INTO t VALUES('k4','d4@3C.508') ON CONFLICT(id) DO UPDATE SET v=excluded.v", ext=False)
W('d3', "INSERT INTO t VALUES('k6','d3@4.422') ON CONFLICT(id) DO UPDATE SET v=excluded.v")
W('d0', "INSERT INTO t VALUES('k3','d0@5.577') ON CONFLICT(id) DO UPDATE SET v=excluded.v")
send('d0', 'd3'); send('d3', 'd0')
send('d0', 'd4')
send('d4', 'd0')
rounds(2); forget_former(); rounds(4)
show()
