# A 150 MB bundle (1,500 rows of 100 KB) imports whole into a process allowed 96 MB of address
# space, and is written by one allowed as little: bundles stream in both directions.
set -eu
dir=$(dirname "$DB")
schema="CREATE TABLE files(id INTEGER PRIMARY KEY, body BLOB); SELECT sync_enable('files');"
sqlite3 "$dir/a.db" >/dev/null <<SQL
.load $SO
SELECT sync_init();
$schema
WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 1500)
INSERT INTO files SELECT i, randomblob(100000) FROM k;
SQL
(
    ulimit -v 98304
    sqlite3 "$dir/a.db" <<SQL
.load $SO
SELECT sync_bundle_out(NULL, '$dir/big.bundle') ->> '\$.bytes' > 150000000;
SQL
    sqlite3 "$DB" <<SQL
.load $SO
SELECT length(sync_init());
$schema
SELECT sync_bundle_in('$dir/big.bundle') ->> '\$.applied_count';
SQL
)
sqlite3 "$DB" <<SQL
ATTACH '$dir/a.db' AS a;
SELECT count(*), sum(length(body)) FROM files;
SELECT count(*) FROM main.files m JOIN a.files o ON o.id = m.id AND o.body = m.body;
SQL
