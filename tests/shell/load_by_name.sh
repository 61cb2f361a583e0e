# The library cargo builds loads by file name alone: SQLite derives the entry point
# sqlite3_sqlitesync_init from "libsqlite_sync".
set -eu
sqlite3 "$DB" <<SQL
.load target/release/libsqlite_sync
SELECT sync_version() = (SELECT sync_version());
SELECT length(sync_init());
SQL
