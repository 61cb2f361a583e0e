#!/bin/sh
# What constraints cost an import, in the sqlite3 shell (times from .timer, one run each):
# 100,000 new rows that name rows of another table (each reference judged) against the same
# rows without the FOREIGN KEY; 100,000 new rows with a UNIQUE column against the same without;
# then 10,000 rows held out (each meets a UNIQUE value a row with an earlier first op keeps),
# a one-row import while they are held out, and their coming back. Bundles are peer-aware.
#   sh benches/constraints.sh path/to/sync0      (the library without its suffix)
set -e
SO=$(realpath "$1"); D=$(mktemp -d); cd "$D"
rows() { # table, count, SELECT of one row from i
    printf "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < %s)
      INSERT INTO %s SELECT %s FROM c;" "$2" "$1" "$3"
}
timed() { # database, label, SQL
    printf '.load %s\n.timer on\n%s\n' "$SO" "$3" | sqlite3 "$1" | grep -v '^{' | sed "s/^/$2: /"
}
S="CREATE TABLE p(id INTEGER PRIMARY KEY, name TEXT);
   CREATE TABLE c(id INTEGER PRIMARY KEY, p INTEGER REFERENCES p(id), n INTEGER);
   CREATE TABLE c0(id INTEGER PRIMARY KEY, p INTEGER, n INTEGER);
   CREATE TABLE u(id INTEGER PRIMARY KEY, email TEXT UNIQUE, n INTEGER);
   CREATE TABLE u0(id INTEGER PRIMARY KEY, email TEXT, n INTEGER);
   CREATE TABLE v(id INTEGER PRIMARY KEY, email TEXT UNIQUE);
   CREATE TABLE one(id INTEGER PRIMARY KEY, n INTEGER);
   SELECT sync_init();
   SELECT sync_enable(column1) FROM (VALUES ('p'), ('c'), ('c0'), ('u'), ('u0'), ('v'), ('one'));"
for db in a b; do sqlite3 $db.db ".load $SO" "$S" > /dev/null; done
A=$(sqlite3 a.db ".load $SO" "SELECT sync_device_id();")
B=$(sqlite3 b.db ".load $SO" "SELECT sync_device_id();")
sqlite3 a.db ".load $SO" "$(rows p 1000 "i, 'list ' || i")" "SELECT sync_bundle_out(NULL, 'p.bundle');" > /dev/null
sqlite3 b.db ".load $SO" "SELECT sync_bundle_in('p.bundle');" > /dev/null
sqlite3 a.db ".load $SO" "$(rows c 100000 "i, 1 + i % 1000, i")" "SELECT sync_bundle_out(NULL, 'c.bundle');" > /dev/null
sqlite3 a.db ".load $SO" "$(rows c0 100000 "i, 1 + i % 1000, i")" "SELECT sync_bundle_out(NULL, 'c0.bundle');" > /dev/null
timed b.db "1. 100,000 new rows, each naming a row of p (FOREIGN KEY)" "SELECT sync_bundle_in('c.bundle');"
timed b.db "2. the same rows without the FOREIGN KEY" "SELECT sync_bundle_in('c0.bundle');"
sqlite3 a.db ".load $SO" "$(rows u 100000 "i, 'user' || i || '@example.org', i")" "SELECT sync_bundle_out(NULL, 'u.bundle');" > /dev/null
sqlite3 a.db ".load $SO" "$(rows u0 100000 "i, 'user' || i || '@example.org', i")" "SELECT sync_bundle_out(NULL, 'u0.bundle');" > /dev/null
timed b.db "3. 100,000 new rows with a UNIQUE column" "SELECT sync_bundle_in('u.bundle');"
timed b.db "4. the same rows without UNIQUE" "SELECT sync_bundle_in('u0.bundle');"
# 10,000 rows written on both devices with the same e-mails, offline: the rows with the earlier
# first op keep them (on each device alike), the others are held out
sqlite3 a.db ".load $SO" "$(rows v 10000 "i, 'person' || i || '@example.org'")" > /dev/null
sqlite3 b.db ".load $SO" "$(rows v 10000 "20000 + i, 'person' || i || '@example.org'")" "SELECT sync_bundle_out('$A', 'vb.bundle');" > /dev/null
timed a.db "5. a imports b's 10,000 rows whose e-mails a's rows also hold (10,000 held out)" "SELECT sync_bundle_in('vb.bundle');"
sqlite3 a.db "SELECT '   a holds out ' || count(*) || ' rows, has ' || (SELECT count(*) FROM v) || ' in v' FROM sync_conflicts WHERE kind = 'constraint';"
# b hears from a (and holds out the same 10,000 rows), so that its next bundle carries one op
sqlite3 a.db ".load $SO" "SELECT sync_bundle_out('$B', 'va.bundle');" > /dev/null
sqlite3 b.db ".load $SO" "SELECT sync_bundle_in('va.bundle');" > /dev/null
sqlite3 b.db ".load $SO" "INSERT INTO one VALUES (1, 1);" "SELECT sync_bundle_out('$A', 'one.bundle');" > /dev/null
timed a.db "6. a one-row import while 10,000 rows are held out" "SELECT sync_bundle_in('one.bundle');"
K=$(sqlite3 a.db "SELECT min(id) FROM v")
sqlite3 a.db ".load $SO" "UPDATE v SET email = 'new' || email WHERE id BETWEEN $K AND $K + 9999;" "SELECT sync_bundle_out('$B', 'va2.bundle');" > /dev/null
timed b.db "7. b imports a's 10,000 renames of the e-mails that keep its rows held out" "SELECT sync_bundle_in('va2.bundle');"
sqlite3 b.db "SELECT '   b holds out ' || count(*) || ' rows, has ' || (SELECT count(*) FROM v) || ' in v' FROM sync_conflicts WHERE kind = 'constraint';"
cd /; rm -rf "$D"
