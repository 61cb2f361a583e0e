#!/bin/sh
# What keeping ops for a table a device lacks costs, in the sqlite3 shell (times from .timer,
# one run each): device a adds a table of 100,000 rows; b, without it, imports them (kept, not
# written), then creates the table and enables it (the kept ops fill it); then b declares a
# column of it otherwise and back (every op of the table sorted again, twice).
#   sh benches/late_table.sh path/to/sync0      (the library without its suffix)
set -e
. "$(dirname "$0")/two_devices.sh"; two_devices "$1" both
T2="CREATE TABLE t2(id INTEGER PRIMARY KEY, label TEXT, n INTEGER)"
sqlite3 a.db ".load $SO" "$T2;" "SELECT sync_enable('t2');" "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL
  SELECT i + 1 FROM c WHERE i < 100000) INSERT INTO t2 SELECT i, 'label ' || i, i FROM c;" \
  "SELECT sync_bundle_out('$B', 'a2.bundle');" > /dev/null
timed() { # database, label, SQL
    printf '.load %s\n.timer on\n%s\n' "$SO" "$3" | sqlite3 "$1" | sed "s/^/$2: /"
}
timed b.db "1. b imports 100,000 inserts of t2, which it lacks (kept)" \
  "SELECT sync_bundle_in('a2.bundle') ->> '\$.waiting_for_schema';"
timed b.db "2. b creates t2 and enables it (the kept ops fill it)" "$T2; SELECT sync_enable('t2');"
timed b.db "3. b declares t2.n TEXT (its 100,000 received ops set aside)" \
  "DROP TABLE t2; CREATE TABLE t2(id INTEGER PRIMARY KEY, label TEXT, n TEXT); SELECT sync_enable('t2');"
timed b.db "4. b declares t2.n INTEGER again (they fill it again)" \
  "DROP TABLE t2; $T2; SELECT sync_enable('t2');"
sqlite3 b.db "SELECT 'b: t2 rows ' || count(*) || ', sum(n) ' || sum(n) FROM t2;"
cd /; rm -rf "$D"
