"""A full bundle imported into an empty device, by itself, to count its instructions under
callgrind (which do not depend on the machine's load):

    SO=dist/sync0 python3 benches/full_import.py build /tmp/ib
    SO=dist/sync0 valgrind --tool=callgrind \\
        --toggle-collect='sqlite_sync::apply::bundle_in::sync_bundle_in' \\
        python3 benches/full_import.py import /tmp/ib

The bundle: 10,000 inserts of the 3-column table and 3,334 updates (any Python with apsw;
SO picks the build)."""
import os
import sys

import apsw

SO = os.environ.get("SO", os.path.join(os.path.dirname(__file__), "..", "dist", "sync0"))
STEP, D = sys.argv[1], sys.argv[2]
TABLE = "CREATE TABLE t(id INTEGER PRIMARY KEY, title TEXT, n INTEGER)"


def device(path):
    if os.path.exists(path):
        os.remove(path)
    c = apsw.Connection(path)
    c.enable_load_extension(True)
    c.load_extension(SO)
    c.execute(TABLE)
    c.execute("SELECT sync_init()").fetchall()
    c.execute("SELECT sync_enable('t')").fetchall()
    return c


if STEP == "build":
    os.makedirs(D, exist_ok=True)
    a = device(f"{D}/a.db")
    a.execute(
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 10000)"
        " INSERT INTO t SELECT i, 'title ' || i, i * 7 FROM c"
    )
    a.execute("UPDATE t SET n = n + 1 WHERE id % 3 = 0")
    if os.path.exists(f"{D}/a.bundle"):
        os.remove(f"{D}/a.bundle")
    a.execute("SELECT sync_bundle_out(NULL, ?)", (f"{D}/a.bundle",)).fetchall()
else:
    b = device(f"{D}/b.db")
    print(b.execute("SELECT sync_bundle_in(?)", (f"{D}/a.bundle",)).fetchone()[0])
