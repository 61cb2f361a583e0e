#!/bin/sh
# Imports N one-column updates into a device holding 100,000 rows, in the sqlite3 shell, for
# comparing builds; prints the time of the import (the sqlite3 process, load included).
#   sh benches/import_updates.sh path/to/sync0 10000      (the library without its suffix)
set -e
SO=$(realpath "$1"); N=$2; D=$(mktemp -d); cd "$D"
S="CREATE TABLE t(id INTEGER PRIMARY KEY, title TEXT, n INTEGER); SELECT sync_enable('t');"
sqlite3 a.db ".load $SO" "SELECT sync_init();" "$S" "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL
  SELECT i + 1 FROM c WHERE i < 100000) INSERT INTO t SELECT i, 'title number ' || i, i * 7 FROM c;" \
  "SELECT sync_bundle_out(NULL, 'a1.bundle');" > /dev/null
sqlite3 b.db ".load $SO" "SELECT sync_init();" "$S" "SELECT sync_bundle_in('a1.bundle');" \
  "SELECT sync_bundle_out(NULL, 'b0.bundle');" > /dev/null
B=$(sqlite3 b.db ".load $SO" "SELECT sync_device_id();")
sqlite3 a.db ".load $SO" "SELECT sync_bundle_in('b0.bundle');" \
  "UPDATE t SET n = n + 1 WHERE id % (100000 / $N) = 0;" "SELECT sync_bundle_out('$B', 'a2.bundle');" > /dev/null
T0=$(date +%s%N)
sqlite3 b.db ".load $SO" "SELECT sync_bundle_in('a2.bundle') ->> '\$.applied_count';" > /dev/null
T1=$(date +%s%N)
echo "$(( (T1 - T0) / 1000000 )) ms"
cd /; rm -rf "$D"
