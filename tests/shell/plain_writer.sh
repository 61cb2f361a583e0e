# Writes from a sqlite3 session that never loads the extension (and distrusts the schema) are
# captured exactly: the capture triggers are built-in SQL only.
set -eu
sqlite3 "$DB" <<SQL
.load $SO
SELECT length(sync_init());
CREATE TABLE t(id TEXT PRIMARY KEY, v);
SELECT sync_enable('t');
SQL
sqlite3 "$DB" <<'SQL'
PRAGMA trusted_schema = OFF;
INSERT INTO t VALUES ('a', 0.1 + 0.2), ('b', x'cafe'), ('c', 'text');
UPDATE t SET v = -9e999 WHERE id = 'a';
UPDATE t SET v = v WHERE id = 'c';
UPDATE t SET id = 'd' WHERE id = 'c';
DELETE FROM t WHERE id = 'b';
SQL
sqlite3 "$DB" <<SQL
.load $SO
SELECT seq, kind, pk, "values" FROM sync_log;
SQL
