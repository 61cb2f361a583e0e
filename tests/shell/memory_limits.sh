# Processes with little memory (`ulimit -v`, address space in KiB).
#
# 1. A 150 MB bundle (1,500 rows of 100 KB) is written and imported by processes allowed 96 MB:
#    bundles stream in both directions, and every row arrives byte for byte.
# 2. A 100 MB value arrives at a process allowed 160 MB: sync_bundle_in fails with an error
#    (where the memory runs out depends on the host, so the message is cut at "out of memory"),
#    the shell goes on, nothing is changed, and the same bundle imports once the process may
#    use more memory.
set -eu
dir=$(dirname "$DB")
schema="CREATE TABLE files(id INTEGER PRIMARY KEY, body BLOB); SELECT sync_enable('files');"

# device $1 with the rows of the SELECT $2 (i from 1 to $3)
device() {
    sqlite3 "$dir/$1.db" >/dev/null <<SQL
.load $SO
SELECT sync_init();
$schema
WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < $3)
INSERT INTO files SELECT i, $2 FROM k WHERE i <= $3;
SQL
}

echo "1. a bundle bigger than memory"
device many "randomblob(100000)" 1500
device empty "NULL" 0
(
    ulimit -v 98304
    sqlite3 "$dir/many.db" <<SQL
.load $SO
SELECT sync_bundle_out(NULL, '$dir/many.bundle') ->> '\$.bytes' > 150000000;
SQL
    sqlite3 "$dir/empty.db" <<SQL
.load $SO
SELECT sync_bundle_in('$dir/many.bundle') ->> '\$.applied_count';
SQL
)
sqlite3 "$dir/empty.db" <<SQL
ATTACH '$dir/many.db' AS a;
SELECT count(*), sum(length(body)) FROM files;
SELECT count(*) FROM main.files m JOIN a.files o ON o.id = m.id AND o.body = m.body;
SQL

echo "2. a value bigger than memory"
device one "randomblob(100000000)" 1
device small "NULL" 0
sqlite3 "$dir/one.db" >/dev/null <<SQL
.load $SO
SELECT sync_bundle_out(NULL, '$dir/one.bundle');
SQL
(
    ulimit -v 163840
    sqlite3 "$dir/small.db" 2>&1 <<SQL || echo "the shell exits with an error status"
.load $SO
SELECT sync_bundle_in('$dir/one.bundle');
SELECT 'still here', count(*), sync_clock() FROM files;
SQL
) | sed 's/^\(.*sync_bundle_in: \).*out of memory.*$/\1... out of memory/'
sqlite3 "$dir/small.db" <<SQL
.load $SO
SELECT sync_bundle_in('$dir/one.bundle') ->> '\$.applied_count';
SELECT id, length(body) FROM files;
SQL
