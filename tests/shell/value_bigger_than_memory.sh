# A 100 MB value arrives at a process allowed 160 MB of address space: sync_bundle_in fails
# with an error (where the memory runs out depends on the host, so the message is cut at
# "out of memory"), the shell goes on, nothing is changed, and the same bundle imports once
# the process may use more memory.
set -eu
dir=$(dirname "$DB")
schema="CREATE TABLE files(id INTEGER PRIMARY KEY, body BLOB); SELECT sync_enable('files');"
sqlite3 "$dir/a.db" >/dev/null <<SQL
.load $SO
SELECT sync_init();
$schema
INSERT INTO files VALUES (1, randomblob(100000000));
SELECT sync_bundle_out(NULL, '$dir/big.bundle');
SQL
sqlite3 "$DB" >/dev/null <<SQL
.load $SO
SELECT sync_init();
$schema
SQL
(
    ulimit -v 163840
    sqlite3 "$DB" 2>&1 <<SQL || echo "the shell exits with an error status"
.load $SO
SELECT sync_bundle_in('$dir/big.bundle');
SELECT 'still here', count(*), sync_clock() FROM files;
SQL
) | sed 's/^\(.*sync_bundle_in: \).*out of memory.*$/\1... out of memory/'
sqlite3 "$DB" <<SQL
.load $SO
SELECT sync_bundle_in('$dir/big.bundle') ->> '\$.applied_count';
SELECT id, length(body) FROM files;
SQL
