"""What a capture trigger costs a statement that is prepared anew (ad-hoc SQL, drivers without
a statement cache): SQLite compiles the triggers an UPDATE may fire each time it prepares it,
at a cost that grows with the trigger's SQL. 30,000 one-row UPDATEs, each prepared anew, in one
transaction, on the 10-column table of `make bench`, with: no trigger; this build's capture
(sync_enable); a trigger that tests each column once and appends every new value (the least an
exact trigger tests, but it does not record which columns changed); one trigger per column
(`UPDATE OF` that column) that appends when its column is the first that changed.

    target/peers-venv/bin/python benches/trigger_compile.py /tmp/trigger_compile

(SO=path/to/sync0 picks another build.)"""
import os
import sys
import time

import apsw

SO = os.environ.get("SO", os.path.join(os.path.dirname(__file__), "..", "dist", "sync0"))
D = sys.argv[1]
os.makedirs(D, exist_ok=True)
COLS = ["a", "b", "c", "d", "e", "f", "g", "h", "j"]
MIXED = {"j"}  # BLOB affinity: 1 and 1.0 stay apart, so the test adds typeof()
TABLE = """CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b INTEGER, c REAL, d TEXT, e INTEGER,
                         f REAL, g TEXT, h INTEGER, j BLOB);
           WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 100000)
           INSERT INTO t SELECT i, 'a' || i, i, i * 0.5, 'd' || i, i * 3, i / 7.0, 'g', i % 10,
                                x'00ff00ff' FROM c;"""
LOG = "CREATE TABLE log(seq INTEGER PRIMARY KEY, mask, v0, v1, v2, v3, v4, v5, v6, v7, v8, v9);"


def changed(c):
    test = f"OLD.{c} IS NOT NEW.{c}"
    return f"({test} OR typeof(OLD.{c}) <> typeof(NEW.{c}))" if c in MIXED else f"({test})"


def one_test():
    when = "OLD.id IS NEW.id AND (" + " OR ".join(changed(c) for c in COLS) + ")"
    values = ", ".join(f"NEW.{c}" for c in COLS)
    return LOG + f"""CREATE TRIGGER u AFTER UPDATE ON t WHEN {when}
                     BEGIN INSERT INTO log VALUES (NULL, 0, NEW.id, {values}); END;"""


def per_column():
    sql = LOG
    for k, col in enumerate(COLS):
        when = ["OLD.id IS NEW.id", changed(col)] + [f"NOT {changed(c)}" for c in COLS[:k]]
        mask = [str(1 << (k + 1))] + [f"({changed(c)} << {i + 1})" for i, c in enumerate(COLS) if i > k]
        values = ["NULL"] * k + [f"NEW.{col}"] + [
            f"CASE WHEN {changed(c)} THEN NEW.{c} END" for c in COLS[k + 1:]
        ]
        sql += f"""CREATE TRIGGER u{k} AFTER UPDATE OF {col} ON t WHEN {' AND '.join(when)}
                   BEGIN INSERT INTO log VALUES (NULL, {' | '.join(mask)}, NEW.id,
                   {', '.join(values)}); END;"""
    return sql


SETUPS = {
    "no trigger": "",
    "this build's capture": "SELECT sync_init(); SELECT sync_enable('t');",
    "each column tested once, no mask": one_test(),
    "one trigger per column": per_column(),
}
WORKS = {
    "SET e = e + 1": lambda i: f"UPDATE t SET e = e + 1 WHERE id = {i * 3}",
    "SET every column": lambda i: f"""UPDATE t SET a = 'x{i}', b = {i}, c = {i}.5, d = 'y',
        e = {i}, f = 1.5, g = 'z', h = {i}, j = x'01' WHERE id = {i * 3}""",
}


def run(setup, work):
    path = os.path.join(D, "t.db")
    for f in (path, path + "-journal"):
        if os.path.exists(f):
            os.remove(f)
    c = apsw.Connection(path, statementcachesize=0)
    c.enable_load_extension(True)
    c.load_extension(SO)
    c.execute(TABLE)
    if setup:
        for _ in c.execute(setup):  # runs every statement (a SELECT stops at its row)
            pass
    times = []
    for _ in range(3):
        c.execute("BEGIN")
        t = time.perf_counter()
        for i in range(1, 30001):
            c.execute(work(i))
        times.append(time.perf_counter() - t)
        c.execute("ROLLBACK")
    c.close()
    return sorted(times)[1]


for work_name, work in WORKS.items():
    base = None
    for name, setup in SETUPS.items():
        s = run(setup, work)
        base = base or s
        print(f"{work_name:18} {name:36} {s * 1000:8.1f} ms  {s / base:5.2f}x", flush=True)
