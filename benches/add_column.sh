#!/bin/sh
# What following an ADD COLUMN costs, in the sqlite3 shell (times from .timer, one run each):
#  1. the first sync call after the column was added on a device holding 100,000 rows, 1,000 of
#     them written in the new column before capture knew it (a new shape and triggers, a scan
#     of the table, 1,000 update ops recorded);
#  2. a device that lacks the column importing a bundle of 100,000 updates of it (written at
#     once, values kept), and its first sync call after it adds the column (every row settled
#     again from its ops).
#   sh benches/add_column.sh path/to/sync0      (the library without its suffix)
set -e
. "$(dirname "$0")/two_devices.sh"; two_devices "$1" both
# a adds the column from a connection without the extension, and writes 1,000 rows of it
sqlite3 a.db "ALTER TABLE t ADD COLUMN c INTEGER DEFAULT 0;" "UPDATE t SET c = 1 WHERE id % 100 = 0;"
printf '.load %s\n.timer on\nSELECT sync_bundle_out(%s, %s) ->> %s;\n' "$SO" "'$B'" "'a2.bundle'" "'\$.ops'" \
  | sqlite3 a.db | sed 's/^/1. first sync call after ADD COLUMN (an export of the ops it records): /'
printf '.load %s\n.timer on\nSELECT sync_bundle_out(%s, %s) ->> %s;\n' "$SO" "'$B'" "'a2.bundle'" "'\$.ops'" \
  | sqlite3 a.db | sed 's/^/1. the same export again: /'
sqlite3 a.db ".load $SO" "UPDATE t SET c = c + 1;" "SELECT sync_bundle_out('$B', 'a3.bundle');" > /dev/null
printf '.load %s\n.timer on\nSELECT sync_bundle_in(%s) ->> %s;\n' "$SO" "'a3.bundle'" "'\$.applied_count'" \
  | sqlite3 b.db | sed 's/^/2. import of 101,000 updates into b, which lacks c: /'
sqlite3 b.db "ALTER TABLE t ADD COLUMN c INTEGER DEFAULT 0;"
printf '.load %s\n.timer on\nSELECT sync_bundle_out(NULL, %s) ->> %s;\n' "$SO" "'b1.bundle'" "'\$.ops'" \
  | sqlite3 b.db | sed 's/^/2. first sync call (export) after b adds c: /'
sqlite3 b.db "SELECT 'b: rows by c: ' || group_concat(c || ' x' || n) FROM (SELECT c, count(*) n FROM t GROUP BY c);"
cd /; rm -rf "$D"
