"""The hub's imports of table 13's star, by themselves: builds the star of N devices through one
hub (two rounds, as the bench does), keeps the hub's file and each device's round-3 bundle,
then imports those bundles into a copy of the hub and prints the median time of one import.
Run the second step under callgrind to count instructions, which do not depend on the disk:

    python3 benches/star_hub.py build 200 /tmp/star
    K=30 valgrind --tool=callgrind --toggle-collect='sqlite_sync::apply::bundle_in::sync_bundle_in' \\
        python3 benches/star_hub.py import 200 /tmp/star

(any Python with apsw; SO=path/to/sync0 picks another build; the first K imports, all N by
default;
SYNC=OFF sets the hub's PRAGMA synchronous, FULL by default)."""
import os
import shutil
import statistics
import sys
import time

import apsw

SO = os.environ.get("SO", os.path.join(os.path.dirname(__file__), "..", "dist", "sync0"))
STEP, N, D = sys.argv[1], int(sys.argv[2]), f"{sys.argv[3]}/{sys.argv[2]}"


def open_db(path):
    c = apsw.Connection(path)
    c.enable_load_extension(True)
    c.load_extension(SO)
    return c


def device(path):
    c = open_db(path)
    c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, title TEXT, n INTEGER)")
    c.execute("SELECT sync_init()").fetchall()
    c.execute("SELECT sync_enable('t')").fetchall()
    return c


def fill(c, first):
    c.execute(
        f"WITH RECURSIVE c(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM c WHERE i < {first + 9})"
        " INSERT INTO t SELECT i, 'title number ' || i, i * 7 FROM c"
    )


def send(source, peer, target, path):
    if os.path.exists(path):
        os.remove(path)
    source.execute("SELECT sync_bundle_out(?, ?)", (peer, path)).fetchall()
    target.execute("SELECT sync_bundle_in(?)", (path,)).fetchall()


if STEP == "build":
    shutil.rmtree(D, ignore_errors=True)
    os.makedirs(D)
    hub = device(f"{D}/hub.db")
    hub_id = hub.execute("SELECT sync_device_id()").fetchone()[0]
    leaves = [device(f"{D}/leaf{k}.db") for k in range(N)]
    ids = [c.execute("SELECT sync_device_id()").fetchone()[0] for c in leaves]
    for round in (1, 2):
        for k, leaf in enumerate(leaves):
            fill(leaf, (round * N + k) * 10)
            send(leaf, hub_id, hub, f"{D}/x.bundle")
        for leaf, leaf_id in zip(leaves, ids):
            send(hub, leaf_id, leaf, f"{D}/x.bundle")
    for k, leaf in enumerate(leaves):
        fill(leaf, (3 * N + k) * 10)
        leaf.execute("SELECT sync_bundle_out(?, ?)", (hub_id, f"{D}/r3-{k}.bundle")).fetchall()
else:
    run = f"{D}/hub-run.db"
    shutil.copy(f"{D}/hub.db", run)
    # the copy is the hub itself, not a new device: its file identity follows it
    plain = apsw.Connection(run)
    plain.execute("UPDATE _sync_state SET value = ? WHERE name = 'file'", (str(os.stat(run).st_ino),))
    plain.close()
    hub = open_db(run)
    hub.execute("PRAGMA synchronous = " + os.environ.get("SYNC", "FULL"))
    times = []
    for k in range(min(int(os.environ.get("K", N)), N)):
        t = time.perf_counter()
        hub.execute("SELECT sync_bundle_in(?)", (f"{D}/r3-{k}.bundle",)).fetchall()
        times.append(time.perf_counter() - t)
    print(f"{N} devices: the hub's import of a 10-row bundle, median {statistics.median(times) * 1e3:.2f} ms")
