#!/bin/sh
# The floor of an imported update: the writes and reads it needs beyond what a new row's import
# does, each done for all 100,000 rows of a device by one set-wise SQL statement (no per-op
# statement, no bundle, no op stored), timed by the sqlite3 shell.
#   sh benches/update_floor.sh path/to/sync0      (the library without its suffix)
set -e
. "$(dirname "$0")/two_devices.sh"; two_devices "$1"
sqlite3 b.db <<'SQL'
CREATE TEMP TABLE k AS SELECT table_id, key, device, seq FROM _sync_rows;
BEGIN;
.timer on
-- find each row's index entry and its first op's form
SELECT count(*) FROM k JOIN _sync_rows r ON r.table_id = k.table_id AND r.key = k.key
  LEFT JOIN _sync_remote o ON r.live IS NULL AND o.device = r.device AND o.seq = r.seq;
-- index the new op on its row
INSERT INTO _sync_row_ops SELECT table_id, key, 2, seq + 100000 FROM k;
-- store the row's live set (34 bytes, as a one-column update's)
UPDATE _sync_rows SET live = randomblob(34);
-- write the user row
UPDATE t SET n = n + 1;
.timer off
ROLLBACK;
SQL
cd /; rm -rf "$D"
