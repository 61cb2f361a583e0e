-- make demo: two devices (two database files) share a todo list through bundle files, in the
-- sqlite3 shell only. Both write offline, exchange bundles, one edit conflicts, it is resolved,
-- the resolution travels back, and both end with the same table.
.mode box --wrap 100
.bail on
.echo on

-- Device A: a fresh database becomes a device; its todo table is synced
.open target/demo/a.db
.load ./dist/sync0
SELECT sync_init() AS device_a;
CREATE TABLE todos(id INTEGER PRIMARY KEY, title TEXT NOT NULL, done INTEGER DEFAULT 0, due REAL);
INSERT INTO todos(title, due) VALUES ('Buy milk', 0.1 + 0.2), ('Write the report', NULL);
SELECT sync_enable('todos') AS enabled;
-- every change is captured in the op log
SELECT seq, kind, pk, "values" FROM sync_log;
-- A packs what a new peer lacks into a bundle file
SELECT sync_bundle_out(NULL, 'target/demo/a1.bundle') ->> '$.ops' AS ops_in_bundle;

-- Device B: same schema, imports A's bundle
.open target/demo/b.db
.load ./dist/sync0
SELECT sync_init() AS device_b;
CREATE TABLE todos(id INTEGER PRIMARY KEY, title TEXT NOT NULL, done INTEGER DEFAULT 0, due REAL);
SELECT sync_enable('todos') AS enabled;
SELECT r ->> '$.applied_count' AS applied, r ->> '$.duplicate_count' AS duplicates,
       r ->> '$.conflict_count' AS conflicts, r ->> '$.pending_count' AS pending
FROM (SELECT sync_bundle_in('target/demo/a1.bundle') AS r);
SELECT * FROM todos;

-- Offline, both edit: B renames todo 1 and adds one; A ticks todo 2, then renames todo 1
UPDATE todos SET title = 'Buy oat milk' WHERE id = 1;
INSERT INTO todos(title) VALUES ('Call the plumber');
SELECT sync_bundle_out(NULL, 'target/demo/b1.bundle') ->> '$.ops' AS ops_in_bundle;
.open target/demo/a.db
.load ./dist/sync0
UPDATE todos SET done = 1 WHERE id = 2;
UPDATE todos SET title = 'Buy almond milk' WHERE id = 1;

-- A imports B's bundle: the two titles conflict; the other edits merge
-- A's rename wins: it is the later write by the logical clock (A's second edit, B's first)
SELECT r ->> '$.applied_count' AS applied, r ->> '$.duplicate_count' AS duplicates,
       r ->> '$.conflict_count' AS conflicts, r ->> '$.pending_count' AS pending
FROM (SELECT sync_bundle_in('target/demo/b1.bundle') AS r);
SELECT * FROM todos;
SELECT table_name, pk, columns, local_values, remote_values, resolved FROM sync_conflicts;

-- A resolves the conflict by taking B's title; the resolution is an ordinary op
SELECT sync_resolve(id, 'remote') AS resolved FROM sync_conflicts WHERE NOT resolved;
SELECT * FROM todos;
SELECT sync_bundle_out(NULL, 'target/demo/a2.bundle') ->> '$.ops' AS ops_in_bundle;

-- B imports it: same rows, and no conflict open on either device
.open target/demo/b.db
.load ./dist/sync0
SELECT r ->> '$.applied_count' AS applied, r ->> '$.duplicate_count' AS duplicates,
       r ->> '$.conflict_count' AS conflicts, r ->> '$.pending_count' AS pending
FROM (SELECT sync_bundle_in('target/demo/a2.bundle') AS r);
SELECT (SELECT count(*) FROM main.sync_conflicts WHERE NOT resolved) AS open_on_b;
ATTACH 'target/demo/a.db' AS a;
SELECT 'B' AS device, * FROM main.todos UNION ALL SELECT 'A', * FROM a.todos ORDER BY 2, 1;
SELECT CASE WHEN NOT EXISTS (SELECT * FROM main.todos EXCEPT SELECT * FROM a.todos)
             AND NOT EXISTS (SELECT * FROM a.todos EXCEPT SELECT * FROM main.todos)
            THEN 'identical' ELSE 'DIFFERENT' END AS "A and B";
-- A keeps the conflict it resolved as its own history (B never saw it open)
SELECT table_name, pk, columns, resolved FROM a.sync_conflict_records;
