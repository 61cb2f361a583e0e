"""Loads the extension from Python (sqlean.py: the stdlib sqlite3 here cannot load extensions),
captures a write, and checks the op. Usage: smoke.py path/to/sync0.so"""
import sys
import sqlean

db = sqlean.connect(":memory:")
db.enable_load_extension(True)
db.load_extension(sys.argv[1])
device = db.execute("SELECT sync_init()").fetchone()[0]
assert len(device) == 32, device
db.execute("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT, data BLOB)")
db.execute("SELECT sync_enable('notes')")
db.execute("INSERT INTO notes VALUES (?, ?, ?)", (1, "héllo", b"\x00\xff"))
db.commit()
rows = db.execute('SELECT kind, pk, "values" FROM sync_log').fetchall()
assert rows == [("insert", '{"id":1}', '{"id":1,"body":"héllo","data":{"blob":"00ff"}}')], rows
assert db.execute("SELECT sync_clock()").fetchone()[0] == '{"%s":1}' % device
print("ok   smoke/python (SQLite %s)" % sqlean.sqlite_version)
