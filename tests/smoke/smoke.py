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

# The driver opens a transaction before an INSERT: an export before commit() is refused, says
# what to do, and the ops leave once committed.
import os, tempfile
folder = tempfile.mkdtemp()
bundle = os.path.join(folder, "a.bundle")
db.execute("INSERT INTO notes VALUES (2, 'not committed yet', NULL)")
try:
    db.execute("SELECT sync_bundle_out(NULL, ?)", (bundle,))
    raise AssertionError("an export before commit() was not refused")
except sqlean.OperationalError as e:
    assert "COMMIT (or ROLLBACK) first" in str(e), e
assert not os.path.exists(bundle)
db.commit()
out = db.execute("SELECT sync_bundle_out(NULL, ?) ->> '$.ops'", (bundle,)).fetchone()[0]
assert out == 2, out

# A migration through the driver: ADD COLUMN and a write to the new column at once, with no
# call; a device that has not added the column yet imports it (the value waits) and fills the
# column at its first sync call after it adds it.
db.execute("ALTER TABLE notes ADD COLUMN tag TEXT")
db.execute("UPDATE notes SET tag = 'home' WHERE id = 1")
db.commit()
bundle2 = os.path.join(folder, "a2.bundle")
db.execute("SELECT sync_bundle_out(NULL, ?)", (bundle2,))
b = sqlean.connect(os.path.join(folder, "b.db"))
b.enable_load_extension(True)
b.load_extension(sys.argv[1])
b.execute("SELECT sync_init()")
b.execute("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT, data BLOB)")
b.execute("SELECT sync_enable('notes')")
result = b.execute("SELECT sync_bundle_in(?) ->> '$.waiting_for_schema'", (bundle2,)).fetchone()[0]
assert result == '["notes.tag"]', result
b.execute("ALTER TABLE notes ADD COLUMN tag TEXT")
b.execute("SELECT sync_bundle_out(NULL, ?)", (os.path.join(folder, "b.bundle"),))
assert b.execute("SELECT tag FROM notes WHERE id = 1").fetchone()[0] == "home"
b.commit()

# A table the next app version adds: b has it first; a imports b's ops of it before it has
# the table (they wait), and its migration creates the table, writes to it and enables it in
# the driver's transaction: the kept ops fill it, a's own row is recorded after them.
b.execute("CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT)")
b.execute("SELECT sync_enable('tags')")
b.execute("INSERT INTO tags VALUES (1, 'home'), (2, 'work')")
b.commit()
bundle3 = os.path.join(folder, "b2.bundle")
b.execute("SELECT sync_bundle_out(NULL, ?)", (bundle3,))
result = db.execute("SELECT sync_bundle_in(?) ->> '$.waiting_for_schema'", (bundle3,)).fetchone()[0]
assert result == '["tags"]', result
db.execute("CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT)")
db.execute("INSERT INTO tags VALUES (3, 'garden')")
db.execute("SELECT sync_enable('tags')")
db.commit()
rows = db.execute("SELECT id, name FROM tags ORDER BY id").fetchall()
assert rows == [(1, "home"), (2, "work"), (3, "garden")], rows

# A table declared otherwise on two devices: b's ops of it wait on a (a would store '7' as 7),
# until a declares it as b does.
b.execute("CREATE TABLE scores(id INTEGER PRIMARY KEY, n TEXT)")
b.execute("SELECT sync_enable('scores')")
b.execute("INSERT INTO scores VALUES (1, '7')")
b.commit()
bundle4 = os.path.join(folder, "b3.bundle")
b.execute("SELECT sync_bundle_out(NULL, ?)", (bundle4,))
db.execute("CREATE TABLE scores(id INTEGER PRIMARY KEY, n INTEGER)")
db.execute("SELECT sync_enable('scores')")
db.commit()
result = db.execute("SELECT sync_bundle_in(?) ->> '$.declared_otherwise'", (bundle4,)).fetchone()[0]
assert 'column scores.n is declared \\"INTEGER\\" here' in result, result
assert db.execute("SELECT count(*) FROM scores").fetchone()[0] == 0
db.execute("DROP TABLE scores")
db.execute("CREATE TABLE scores(id INTEGER PRIMARY KEY, n TEXT)")
db.execute("SELECT sync_enable('scores')")
db.commit()
assert db.execute("SELECT id, n FROM scores").fetchall() == [(1, "7")]
# Bundles over any transport, through the driver: a BLOB (bytes in Python), inspection, status,
# and a shared folder, with the driver's implicit transactions.
blob = b.execute("SELECT sync_bundle_out(NULL)").fetchone()[0]
assert isinstance(blob, bytes) and len(blob) > 0
info = db.execute("SELECT sync_bundle_info(?) ->> '$.new_here'", (blob,)).fetchone()[0]
c = sqlean.connect(os.path.join(folder, "c.db"))
c.enable_load_extension(True)
c.load_extension(sys.argv[1])
c.execute("SELECT sync_init()")
c.execute("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT, data BLOB, tag TEXT)")
c.execute("SELECT sync_enable('notes')")
c.commit()
applied = c.execute("SELECT sync_bundle_in(?) ->> '$.applied_count'", (blob,)).fetchone()[0]
assert applied > 0, applied
c.commit()
assert c.execute("SELECT sync_bundle_in(?) ->> '$.skipped'", (blob,)).fetchone()[0] == 1
lacks = c.execute("SELECT p.value ->> 'lacks' FROM json_each(sync_status(), '$.peers') p "
                  "WHERE p.value ->> 'device_id' = ?", (b.execute("SELECT sync_device_id()").fetchone()[0],)).fetchone()
assert lacks is not None, lacks
shared = os.path.join(folder, "shared")
os.mkdir(shared)
c.execute("INSERT INTO notes(id, body) VALUES (10, 'via the folder')")
c.commit()
out = c.execute("SELECT sync_folder_out(?) ->> '$.ops'", (shared,)).fetchone()[0]
assert out > 0, out
got = db.execute("SELECT sync_folder_in(?)", (shared,)).fetchone()[0]
db.commit()
assert '"imported":1' in got, got
assert db.execute("SELECT body FROM notes WHERE id = 10").fetchone() == ("via the folder",)
db.execute("SELECT sync_folder_out(?)", (shared,))
assert c.execute("SELECT sync_folder_prune(?) ->> '$.removed'", (shared,)).fetchone()[0] == 0
print("ok   smoke/python transports (BLOB, info, status, folder)")
print("ok   smoke/python (SQLite %s)" % sqlean.sqlite_version)
