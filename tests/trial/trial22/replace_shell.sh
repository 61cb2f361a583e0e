#!/bin/sh
# INSERT OR REPLACE / UPDATE OR REPLACE evicting a row through a UNIQUE column, extension loaded, sqlite3 shell
D=${WORK:-/tmp/t22}/rep_shell; rm -rf $D; mkdir -p $D; cd $D
S="CREATE TABLE u(id TEXT PRIMARY KEY, email TEXT UNIQUE, n TEXT);"
sqlite3 a.db ".load ${EXT:-dist/sync0}" "SELECT sync_init();" "$S" "SELECT sync_enable('u');" \
  "INSERT INTO u VALUES('1','x@e','one'),('2','y@e','two'),('3','z@e','three');" "SELECT sync_bundle_out(NULL,'0.bundle') ->> '\$.ops';" >/dev/null
sqlite3 b.db ".load ${EXT:-dist/sync0}" "SELECT sync_init();" "$S" "SELECT sync_enable('u');" "SELECT sync_bundle_in('0.bundle') ->> '\$.applied_count';" >/dev/null
sqlite3 a.db ".load ${EXT:-dist/sync0}" \
  "INSERT OR REPLACE INTO u VALUES('4','x@e','four');" \
  "UPDATE OR REPLACE u SET email='y@e' WHERE id='3';" \
  "SELECT sync_bundle_out(NULL,'1.bundle') ->> '\$.ops';" >/dev/null
sqlite3 b.db ".load ${EXT:-dist/sync0}" "SELECT sync_bundle_in('1.bundle') ->> '\$.held_out_count';" >/dev/null
echo a:; sqlite3 a.db "SELECT * FROM u ORDER BY id;"
echo b:; sqlite3 b.db "SELECT * FROM u ORDER BY id;" "SELECT kind, pk, reason FROM sync_conflict_records;"
