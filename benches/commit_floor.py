"""The floor of a small import's commit on this machine's disk: a transaction that writes one
row into each of 12 tables (as many as a one-row import writes: the received op, its row index
entry, the user row, the clock, hashes, change points, epochs, peers, the bundle's id, state),
every statement prepared once, against the same transaction writing one table.

    target/peers-venv/bin/python benches/commit_floor.py /tmp/commit_floor.db
"""
import os
import sys
import time

import apsw

p = sys.argv[1]
for f in (p, p + "-journal"):
    if os.path.exists(f):
        os.remove(f)
c = apsw.Connection(p)
for i in range(12):
    c.execute(f"CREATE TABLE t{i}(a INTEGER, b INTEGER, v BLOB, PRIMARY KEY (a, b)) WITHOUT ROWID")
offset = 0


def median_ms(tables, n=300):
    global offset
    offset += n
    times = []
    for k in range(offset, offset + n):
        t = time.perf_counter()
        c.execute("BEGIN")
        for i in range(tables):
            c.execute(f"INSERT INTO t{i} VALUES (?, ?, randomblob(20))", (k, k))
        c.execute("COMMIT")
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2] * 1000


for tables in (1, 12, 1, 12):
    print(f"one row into each of {tables} tables, one transaction: {median_ms(tables):.3f} ms")
