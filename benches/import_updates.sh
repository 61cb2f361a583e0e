#!/bin/sh
# Imports N one-column updates into a device holding 100,000 rows, in the sqlite3 shell, for
# comparing builds; prints the time of the import (the sqlite3 process, load included).
#   sh benches/import_updates.sh path/to/sync0 10000      (the library without its suffix)
set -e
N=$2
. "$(dirname "$0")/two_devices.sh"; two_devices "$1"
sqlite3 a.db ".load $SO" "SELECT sync_bundle_in('b0.bundle');" \
  "UPDATE t SET n = n + 1 WHERE id % (100000 / $N) = 0;" "SELECT sync_bundle_out('$B', 'a2.bundle');" > /dev/null
T0=$(date +%s%N)
sqlite3 b.db ".load $SO" "SELECT sync_bundle_in('a2.bundle') ->> '\$.applied_count';" > /dev/null
T1=$(date +%s%N)
echo "$(( (T1 - T0) / 1000000 )) ms"
cd /; rm -rf "$D"
