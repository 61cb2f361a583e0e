-- Capture in the sqlite3 shell, with recursive triggers off and then on.
.load @SO@
.mode list
SELECT 'device id has ' || length(sync_init()) || ' hex digits';
SELECT sync_init() = sync_device_id();
PRAGMA recursive_triggers;
CREATE TABLE "order"(id INTEGER PRIMARY KEY, "due date" TEXT, amount REAL, data BLOB, note);
INSERT INTO "order" VALUES (1, 'today', 0.1 + 0.2, x'00ff', NULL);
SELECT sync_enable('order');
INSERT INTO "order" VALUES (2, 'später ✓', -0.0, x'', 9e999);
INSERT INTO "order"(id, note) VALUES (3, -9223372036854775808);
UPDATE "order" SET "due date" = 'tomorrow' WHERE id = 1;
UPDATE "order" SET "due date" = 'tomorrow' WHERE id = 1;
UPDATE "order" SET note = 1.0 WHERE id = 1;
UPDATE "order" SET id = 4 WHERE id = 3;
DELETE FROM "order" WHERE id = 2;
BEGIN; DELETE FROM "order"; ROLLBACK;
INSERT OR REPLACE INTO "order" VALUES (1, 'replaced', 1.5, NULL, NULL);
SELECT seq, lamport, "table", kind, pk, "values" FROM sync_log;
SELECT json_extract(sync_clock(), '$.' || sync_device_id());
UPDATE _sync_ops SET kind = 0;
SELECT sync_enable('nope');
SELECT sync_enable('order; DROP TABLE "order"');
CREATE TABLE nopk(a, b);
SELECT sync_enable('nopk');
CREATE VIRTUAL TABLE docs USING fts5(body);
SELECT sync_enable('docs');
PRAGMA recursive_triggers = ON;
INSERT OR REPLACE INTO "order" VALUES (1, 'replaced again', 2.5, NULL, -0.0);
UPDATE "order" SET amount = amount + 1;
SELECT seq, kind, pk, "values" FROM sync_log WHERE seq > 9;
SELECT sync_disable('order');
INSERT INTO "order" VALUES (9, 'not captured', 0, NULL, NULL);
SELECT count(*) FROM sync_log;
