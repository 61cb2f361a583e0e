"""Where a compacted database's bytes go: table 14's scenario (three devices take turns
updating random rows, each writer's bundle to the two others and theirs back, every device
compacting after each turn of 10,000 updates, then two rounds in which every device hears from
every other) over a table of ROWS rows with 3 columns or 10 (`--wide`: longer names, as an
app's), each update setting the last column (or, with `--fields`, one to three columns of
the row picked at random, as a form that saves the fields edited), then the rows and KiB of
each table of one device (0, 1 or 2) and the database's, the time the compactions took, and
the ops and bytes of every bundle sent:

    python3 benches/compaction_size.py ROWS UPDATES [--wide] [--fields] [--device N] [--dir DIR]

(any Python with apsw; SO=path/to/sync0 picks another build)."""
import json
import os
import random
import shutil
import sys
import time

import apsw

SO = os.environ.get("SO", os.path.join(os.path.dirname(__file__), "..", "dist", "sync0"))
args = sys.argv[1:]
ROWS, UPDATES = int(args[0]), int(args[1])
WIDE = "--wide" in args
FIELDS = "--fields" in args
SHOW = int(args[args.index("--device") + 1]) if "--device" in args else 0
D = args[args.index("--dir") + 1] if "--dir" in args else "/tmp/compaction-size"
TURN = 10_000
if WIDE:
    TABLE = ("CREATE TABLE t(id INTEGER PRIMARY KEY, title TEXT, description TEXT, status TEXT,"
             " priority INTEGER, created_at TEXT, updated_at TEXT, due_date TEXT, owner TEXT,"
             " n INTEGER)")
    ROW = ("SELECT i, 'title number ' || i, 'some words of a description', 'open', i % 5,"
           " '2026-12-01', '2026-12-02', '2026-12-24', 'me', i * 7 FROM c")
    COLUMNS = ["title", "description", "status", "priority", "created_at", "updated_at",
               "due_date", "owner", "n"]
else:
    TABLE = "CREATE TABLE t(id INTEGER PRIMARY KEY, title TEXT, n INTEGER)"
    ROW = "SELECT i, 'title number ' || i, i * 7 FROM c"
    COLUMNS = ["title", "n"]

shutil.rmtree(D, ignore_errors=True)
os.makedirs(D)


def device(name):
    c = apsw.Connection(f"{D}/{name}.db")
    c.enable_load_extension(True)
    c.load_extension(SO)
    c.execute("PRAGMA synchronous = OFF")
    c.execute(TABLE)
    c.execute("SELECT sync_init()").fetchall()
    c.execute("SELECT sync_enable('t')").fetchall()
    return c


devices = [device(n) for n in "abc"]
ids = [c.execute("SELECT sync_device_id()").fetchone()[0] for c in devices]


def send(f, t):
    path = f"{D}/x.bundle"
    if os.path.exists(path):
        os.remove(path)
    out = json.loads(devices[f].execute("SELECT sync_bundle_out(?, ?)", (ids[t], path)).fetchone()[0])
    devices[t].execute("SELECT sync_bundle_in(?)", (path,)).fetchall()
    sent[0] += out["bytes"]
    sent[1] += out["ops"]


compacting = 0.0  # seconds in sync_compact(), every device
sent = [0, 0]  # bytes and ops of every bundle sent


def compact_all():
    global compacting
    for c in devices:
        started = time.perf_counter()
        c.execute("SELECT sync_compact()").fetchall()
        compacting += time.perf_counter() - started


devices[0].execute(
    f"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {ROWS})"
    f" INSERT INTO t {ROW}"
)
rng = random.Random(11)
for turn in range((UPDATES + TURN - 1) // TURN):
    w = turn % 3
    with devices[w]:
        for _ in range(min(TURN, UPDATES - turn * TURN)):
            cols = rng.sample(COLUMNS, rng.randint(1, min(3, len(COLUMNS)))) if FIELDS else ["n"]
            sets = ", ".join(f"{c} = ?" for c in cols)
            values = [rng.randrange(1 << 20) for _ in cols]
            devices[w].execute(f"UPDATE t SET {sets} WHERE id = ?",
                               (*values, 1 + rng.randrange(ROWS)))
    for o in range(3):
        if o != w:
            send(w, o)
            send(o, w)
    compact_all()
for _ in range(2):
    for f in range(3):
        for t in range(3):
            if f != t:
                send(f, t)
    compact_all()
c = devices[SHOW]
for (name,) in c.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND (name LIKE '\\_sync%' ESCAPE '\\'"
        " OR name = 't') ORDER BY name").fetchall():
    rows = c.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
    kib = c.execute("SELECT sum(pgsize) / 1024 FROM dbstat WHERE name = ?", (name,)).fetchone()[0]
    if rows:
        print(f"{name:20} {rows:8} rows {kib:6} KiB")
total = c.execute("SELECT sum(pgsize) / 1024 FROM dbstat").fetchone()[0]
held = c.execute("SELECT count(*) FROM sync_log").fetchone()[0]
plain = apsw.Connection(f"{D}/plain.db")
plain.execute(TABLE)
plain.execute(f"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {ROWS})"
              f" INSERT INTO t {ROW}")
plain.execute("VACUUM")
plain_kib = plain.execute("SELECT sum(pgsize) / 1024 FROM dbstat").fetchone()[0]
print(f"device {'abc'[SHOW]}: {held} ops held, {total} KiB in all (indexes included), "
      f"{total / plain_kib:.2f}x the plain table's database ({plain_kib} KiB)")
print(f"sync_compact() took {compacting:.2f} s in all ({3 * (turn + 3)} calls)")
print(f"bundles sent: {sent[1]} ops, {sent[0] // 1024} KiB in all")
