"""Install test of the wheel: a process that loaded the extension through one SQLite library
(apsw's) and then loads it through another (sqlean.py's) gets a clear error from the second
load, not a crash later, and the first library's connections go on working.
Usage: two_libraries.py WORK_DIR"""
import os
import sys

import apsw
import sqlean
import sqlite_sync_ext

work = sys.argv[1]
os.makedirs(work)
first = apsw.Connection(os.path.join(work, "a.db"))
sqlite_sync_ext.load(first)
assert len(list(first.execute("SELECT sync_init()"))[0][0]) == 32
second = sqlean.connect(os.path.join(work, "b.db"), isolation_level=None)
try:
    sqlite_sync_ext.load(second)
    raise AssertionError("a second SQLite library loaded the extension")
except sqlean.OperationalError as e:
    assert "another SQLite library" in str(e) and "one of them only" in str(e), e
first.execute("CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT)")
list(first.execute("SELECT sync_enable('todos')"))
first.execute("INSERT INTO todos VALUES ('a1', 'still synced')")
assert list(first.execute("SELECT count(*) FROM sync_log"))[0][0] == 1
print("ok   dist/python apsw then sqlean.py in one process: the second load says so")
