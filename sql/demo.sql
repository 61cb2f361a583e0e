-- make demo: capture in the sqlite3 shell. Every write to a synced table becomes an op in the log.
.load ./dist/sync0
.mode box --wrap 100
.print '-- this database becomes a device'
SELECT sync_version() AS version, sync_init() AS device_id;

.print '-- a table with rows in it; enabling sync records the rows already there'
CREATE TABLE todos(id INTEGER PRIMARY KEY, title TEXT NOT NULL, done INTEGER DEFAULT 0, due REAL);
INSERT INTO todos(title, due) VALUES ('Buy milk', 0.1 + 0.2);
SELECT sync_enable('todos') AS enabled;

.print '-- ordinary SQL from here on: insert, update, a no-op update, a rolled-back delete, a delete'
INSERT INTO todos(title) VALUES ('Write the report');
UPDATE todos SET done = 1 WHERE title = 'Buy milk';
UPDATE todos SET done = 1 WHERE title = 'Buy milk';
BEGIN; DELETE FROM todos; ROLLBACK;
DELETE FROM todos WHERE id = 2;

.print '-- the op log, decoded (the no-op update and the rolled-back delete left nothing)'
SELECT seq, kind, pk, "values" FROM sync_log;

.print "-- this device's vector clock"
SELECT sync_clock() AS clock;
