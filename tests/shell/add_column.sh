# A migration run in a sqlite3 session that never loads the extension: ALTER TABLE ADD COLUMN
# and writes to the new column at once, on one device; the other device imports before it
# upgrades (the values wait), then upgrades in a session without the extension too.
set -eu
A="$DB"; B="$(dirname "$DB")/b.db"; cd "$(dirname "$DB")"
for d in "$A" "$B"; do
sqlite3 "$d" <<SQL > /dev/null
.load $SO
SELECT sync_init();
CREATE TABLE todos(id INTEGER PRIMARY KEY, title TEXT);
SELECT sync_enable('todos');
SQL
done
sqlite3 "$A" ".load $SO" "INSERT INTO todos VALUES (1, 'milk'), (2, 'tea');" \
  "SELECT sync_bundle_out(NULL, 'a1.bundle') ->> '\$.ops';"
sqlite3 "$B" ".load $SO" "SELECT sync_bundle_in('a1.bundle') ->> '\$.applied_count';"
sqlite3 "$A" "ALTER TABLE todos ADD COLUMN due TEXT DEFAULT 'never';" \
  "UPDATE todos SET due = 'friday' WHERE id = 1;" "INSERT INTO todos VALUES (3, 'rice', 'monday');"
echo "-- a exports; b has not added the column"
sqlite3 "$A" ".load $SO" "SELECT sync_bundle_out(NULL, 'a2.bundle') ->> '\$.ops';"
sqlite3 "$B" ".load $SO" \
  "SELECT r ->> '\$.applied_count', r ->> '\$.waiting_for_schema' FROM (SELECT sync_bundle_in('a2.bundle') AS r);" \
  "SELECT * FROM todos;"
echo "-- b upgrades without the extension; its next sync call fills the column"
sqlite3 "$B" "ALTER TABLE todos ADD COLUMN due TEXT DEFAULT 'never';"
sqlite3 "$B" ".load $SO" "SELECT sync_bundle_out(NULL, 'b1.bundle') ->> '\$.ops';" "SELECT * FROM todos;"
