# Bundles over any transport in the sqlite3 shell: a BLOB through a table, inspection, status,
# and a folder shared by three devices (with a stray file and a copy still arriving).
set -eu
dir=$(dirname "$DB")
mkdir -p "$dir/shared"
for d in a b c; do
sqlite3 "$dir/$d.db" <<SQL >/dev/null
.load $SO
SELECT sync_init();
CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT);
SELECT sync_enable('todos');
INSERT INTO todos VALUES ('$d', 'from $d');
SQL
done
sqlite3 "$dir/a.db" <<SQL
.load $SO
ATTACH '$dir/b.db' AS b;
CREATE TABLE b.inbox(bundle BLOB);
INSERT INTO b.inbox SELECT sync_bundle_out(NULL);
SELECT 'info', i ->> 'ops', i -> 'tables', i ->> 'imported_here', i ->> 'new_here'
FROM (SELECT sync_bundle_info(bundle) AS i FROM b.inbox);
SQL
sqlite3 "$dir/b.db" <<SQL || true
.load $SO
-- (MATERIALIZED: SQLite would otherwise call the import once per field read)
WITH x AS MATERIALIZED (SELECT sync_bundle_in(bundle) AS r FROM inbox)
SELECT 'blob in', r ->> 'applied_count', r ->> 'skipped' FROM x;
WITH x AS MATERIALIZED (SELECT sync_bundle_in(bundle) AS r FROM inbox)
SELECT 'again', r ->> 'skipped' FROM x;
SELECT 'status', s ->> 'log.ops', json_array_length(s -> 'peers'), s -> 'peers[0].heard_from', s ->> 'peers[0].lacks'
FROM (SELECT sync_status() AS s);
SELECT 'not a bundle', sync_bundle_in(x'0102');
SQL
echo "junk" > "$dir/shared/notes.bundle"
for round in 1 2 3; do
  for d in a b c; do
    sqlite3 "$dir/$d.db" ".load $SO" "SELECT sync_folder_in('$dir/shared') ->> 'applied_count';" \
      "SELECT sync_folder_out('$dir/shared') ->> 'ops';" | tr '\n' ' '
  done
  echo
done
for d in a b c; do
  sqlite3 "$dir/$d.db" "SELECT '$d', group_concat(id, ',') FROM (SELECT id FROM todos ORDER BY id);"
done
sqlite3 "$dir/c.db" ".load $SO" "SELECT sync_folder_prune('$dir/shared');"
ls "$dir/shared" | wc -l
