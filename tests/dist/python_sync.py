"""Install test of the wheel: two devices sync through bundle files with each driver installed
(sqlean.py, apsw, pysqlite3, the stdlib sqlite3 where it can load extensions; where it cannot,
load() must say so). Usage: python_sync.py WORK_DIR [DRIVER...]  (default: all present)"""
import importlib
import os
import sys

import sqlite_sync_ext

work, wanted = sys.argv[1], sys.argv[2:] or ["sqlean", "apsw", "pysqlite3", "sqlite3"]
assert os.path.isfile(sqlite_sync_ext.loadable_path()), sqlite_sync_ext.loadable_path()
assert "site-packages" in sqlite_sync_ext.__file__, "not the installed wheel: " + sqlite_sync_ext.__file__


def connect(driver, path):
    """A connection in autocommit mode: sync_bundle_out is refused inside a write transaction."""
    if driver == "apsw":
        import apsw
        return apsw.Connection(path)       # autocommit unless BEGIN
    module = importlib.import_module("pysqlite3.dbapi2" if driver == "pysqlite3" else driver)
    return module.connect(path, isolation_level=None)


def value(conn, sql, *args):
    rows = list(conn.execute(sql, args))
    return rows[0][0] if rows else None


def device(driver, folder, name, row_id):
    conn = connect(driver, os.path.join(folder, name + ".db"))
    sqlite_sync_ext.load(conn)
    assert len(value(conn, "SELECT sync_init()")) == 32
    conn.execute("CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT)")
    value(conn, "SELECT sync_enable('todos')")
    conn.execute("INSERT INTO todos VALUES (?, ?)", (row_id, "from " + name))
    return conn


def two_devices(driver):
    folder = os.path.join(work, driver)
    os.makedirs(folder)
    a, b = device(driver, folder, "A", "a1"), device(driver, folder, "B", "b1")
    a_bundle, b_bundle = os.path.join(folder, "a.bundle"), os.path.join(folder, "b.bundle")
    value(a, "SELECT sync_bundle_out(NULL, ?)", a_bundle)
    value(b, "SELECT sync_bundle_in(?)", a_bundle)
    assert value(b, "SELECT title FROM todos WHERE id = 'a1'") == "from A"
    value(b, "SELECT sync_bundle_out(NULL, ?)", b_bundle)
    value(a, "SELECT sync_bundle_in(?)", b_bundle)
    assert value(a, "SELECT title FROM todos WHERE id = 'b1'") == "from B"
    for conn in (a, b):
        assert value(conn, "SELECT count(*) FROM todos") == 2
    return value(a, "SELECT sqlite_version()")


py = "Python %d.%d.%d" % sys.version_info[:3]
for driver in wanted:
    try:
        importlib.import_module("pysqlite3.dbapi2" if driver == "pysqlite3" else driver)
    except ImportError:
        print("skip dist/python %s: not installed (%s)" % (driver, py))
        continue
    if driver == "sqlite3" and not hasattr(__import__("sqlite3").Connection, "enable_load_extension"):
        import sqlite3
        try:
            sqlite_sync_ext.load(sqlite3.connect(":memory:"))
            raise AssertionError("load() did not refuse a sqlite3 without extension loading")
        except sqlite_sync_ext.ExtensionLoadingUnsupported as e:
            assert "sqlean.py" in str(e) and "apsw" in str(e), e
        print("ok   dist/python sqlite3 (stdlib, %s built without extension loading): load() says so" % py)
        continue
    print("ok   dist/python %s (%s, SQLite %s): two devices synced" % (driver, py, two_devices(driver)))
