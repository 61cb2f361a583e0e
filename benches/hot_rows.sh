#!/bin/sh
# The hot-rows work in the sqlite3 shell, for comparing builds: two devices, 100 rows, five
# rounds of 2,000 one-row updates (both columns, random rows) on each between peer-aware
# exchanges. Prints the time of the rounds, each file's size and the conflict records.
#   sh benches/hot_rows.sh path/to/sync0      (the library without its suffix)
set -e
SO=$(realpath "$1"); D=$(mktemp -d); cd "$D"
for dev in a b; do for r in 0 1 2 3 4; do
  sqlite3 :memory: "WITH RECURSIVE i(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM i WHERE k < 2000)
    SELECT 'UPDATE t SET n = ' || v || ', s = ''$dev ' || v || ''' WHERE id = ' || (1 + abs(random()) % 100) || ';'
    FROM (SELECT abs(random()) % 1000000 AS v FROM i);" > "$dev$r.sql"
  sed -i '1i BEGIN;' "$dev$r.sql"; echo 'COMMIT;' >> "$dev$r.sql"
done; done
S="CREATE TABLE t(id INTEGER PRIMARY KEY, n INTEGER, s TEXT); SELECT sync_enable('t');"
sqlite3 a.db ".load $SO" "SELECT sync_init();" "$S" "WITH RECURSIVE i(n) AS (SELECT 1 UNION ALL
  SELECT n + 1 FROM i WHERE n < 100) INSERT INTO t SELECT n, 0, 'row ' || n FROM i;" > /dev/null
sqlite3 b.db ".load $SO" "SELECT sync_init();" "$S" > /dev/null
A=$(sqlite3 a.db ".load $SO" "SELECT sync_device_id();")
B=$(sqlite3 b.db ".load $SO" "SELECT sync_device_id();")
send() { # from to peer
  sqlite3 "$1.db" ".load $SO" "SELECT sync_bundle_out('$3', 'x.bundle');" > /dev/null
  sqlite3 "$2.db" ".load $SO" "SELECT sync_bundle_in('x.bundle');" > /dev/null; rm x.bundle
}
send a b "$B"
T0=$(date +%s%N)
for r in 0 1 2 3 4; do
  sqlite3 a.db ".load $SO" ".read a$r.sql"; sqlite3 b.db ".load $SO" ".read b$r.sql"
  send a b "$B"; send b a "$A"
done
T1=$(date +%s%N)
echo "$(( (T1 - T0) / 1000000 )) ms; a.db $(stat -c %s a.db) bytes, b.db $(stat -c %s b.db) bytes;" \
  "records $(sqlite3 a.db 'SELECT count(*) FROM _sync_conflicts')," \
  "open $(sqlite3 a.db ".load $SO" 'SELECT count(*) FROM sync_conflicts WHERE NOT resolved')"
cd /; rm -rf "$D"
