"""Small syncs over many round trips: two devices exchange one-row peer-aware bundles, each
import timed; prints the median of the last 40 imports every 500 round trips.

    target/peers-venv/bin/python benches/round_trips.py 4000 /tmp/round_trips

(the venv as in ../shared/peers/README.md; SO=path/to/sync0 picks another build; a directory
that holds a.db and b.db from an earlier run goes on from there)."""
import os
import sys
import time

import apsw

SO = os.environ.get("SO", os.path.join(os.path.dirname(__file__), "..", "dist", "sync0"))
N, D = int(sys.argv[1]), sys.argv[2]
os.makedirs(D, exist_ok=True)


def open_db(path):
    c = apsw.Connection(path)
    c.enable_load_extension(True)
    c.load_extension(SO)
    return c


resume = os.path.exists(f"{D}/a.db")
A, B = open_db(f"{D}/a.db"), open_db(f"{D}/b.db")
if not resume:
    for c in (A, B):
        c.execute("SELECT sync_init()")
        c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        c.execute("SELECT sync_enable('t')")
ida = A.execute("SELECT sync_device_id()").fetchone()[0]
idb = B.execute("SELECT sync_device_id()").fetchone()[0]
k = A.execute("SELECT coalesce(max(id), 0) FROM t").fetchone()[0]
times = []
for i in range(N):
    for src, dst, peer in ((A, B, idb), (B, A, ida)):
        k += 1
        src.execute("INSERT INTO t(id, v) VALUES (?, 'x')", (k,))
        path = f"{D}/x{k % 2}.bundle"
        src.execute("SELECT sync_bundle_out(?, ?)", (peer, path))
        t = time.perf_counter()
        dst.execute("SELECT sync_bundle_in(?)", (path,))
        times.append(time.perf_counter() - t)
    if i % 500 == 0 or i == N - 1:
        last = sorted(times[-40:])
        print(i, f"{last[len(last) // 2] * 1000:.2f} ms", flush=True)
