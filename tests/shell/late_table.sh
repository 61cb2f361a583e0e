# An app version that adds a table reaches the devices one at a time: a device without the
# table imports bundles that name it (its ops wait, and are relayed), and when the app creates
# the table there and enables it, the kept ops fill it. DROP COLUMN of a captured column is
# refused by SQLite with a trigger name that says what to do.
set -eu
A="$DB"; B="$(dirname "$DB")/b.db"; C="$(dirname "$DB")/c.db"; cd "$(dirname "$DB")"
for d in "$A" "$B" "$C"; do
sqlite3 "$d" <<SQL > /dev/null
.load $SO
SELECT sync_init();
CREATE TABLE todos(id INTEGER PRIMARY KEY, title TEXT);
SELECT sync_enable('todos');
SQL
done
echo "-- a runs the new version: a table tags"
sqlite3 "$A" ".load $SO" "CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT);" \
  "SELECT sync_enable('tags');" "INSERT INTO tags VALUES (1, 'home'), (2, 'work');" \
  "INSERT INTO todos VALUES (1, 'milk');" "SELECT sync_bundle_out(NULL, 'a1.bundle') ->> '\$.ops';"
echo "-- b has no tags yet: the bundle imports, tags waits"
sqlite3 "$B" ".load $SO" \
  "SELECT r ->> '\$.applied_count', r ->> '\$.waiting_for_schema' FROM (SELECT sync_bundle_in('a1.bundle') AS r);" \
  "SELECT * FROM todos;" "SELECT sync_bundle_out(NULL, 'b1.bundle') ->> '\$.ops';"
echo "-- c takes it from b, then upgrades: the kept ops fill tags"
sqlite3 "$C" ".load $SO" "SELECT sync_bundle_in('b1.bundle') ->> '\$.waiting_for_schema';" \
  "CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT);" "SELECT sync_enable('tags');" \
  "SELECT * FROM tags;"
echo "-- DROP COLUMN of a captured column"
sqlite3 "$C" "ALTER TABLE todos DROP COLUMN title;" 2>&1 | sed 's/^Error: [a-z ]*, //' || true
echo "-- c declares tags.name otherwise than a: a's ops of it wait on c, until c declares it alike"
sqlite3 "$A" ".load $SO" "UPDATE tags SET name = 'HOME' WHERE id = 1;" "SELECT sync_bundle_out(NULL, 'a2.bundle') ->> '\$.ops';"
sqlite3 "$C" ".load $SO" "SELECT sync_disable('tags');" "DROP TABLE tags;" \
  "CREATE TABLE tags(id INTEGER PRIMARY KEY, name INTEGER);" "SELECT sync_enable('tags');" \
  "SELECT sync_bundle_in('a2.bundle') ->> '\$.declared_otherwise';" "SELECT table_name, ops FROM sync_waiting;" \
  "SELECT count(*) FROM tags;"
sqlite3 "$C" ".load $SO" "DROP TABLE tags;" "CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT);" \
  "SELECT sync_enable('tags');" "SELECT count(*) FROM sync_waiting;" "SELECT * FROM tags;"
echo "-- a renames a column: its next sync call refuses, saying what to do; done so, it syncs"
sqlite3 "$A" "ALTER TABLE todos RENAME COLUMN title TO name;"
sqlite3 "$A" ".load $SO" "SELECT sync_bundle_out(NULL, 'a3.bundle');" 2>&1 | sed 's/^Error: [a-z ]*, //' || true
sqlite3 "$A" ".load $SO" "SELECT sync_disable('todos');" "SELECT sync_enable('todos');" \
  "SELECT sync_bundle_out(NULL, 'a3.bundle') ->> '\$.ops';"
echo "-- b switches sync off on todos, edits it and imports a's rename meanwhile; enabled again, it records only its changes"
sqlite3 "$B" ".load $SO" "SELECT sync_disable('todos');" "INSERT INTO todos VALUES (9, 'bread');" \
  "SELECT sync_bundle_in('a3.bundle') ->> '\$.waiting_for_schema';" "SELECT sync_enable('todos');" \
  "SELECT kind, pk FROM sync_log WHERE device = sync_device_id() AND \"table\" = 'todos';"
