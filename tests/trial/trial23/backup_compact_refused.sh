#!/bin/bash
# A new user's trial (2026-12-06, trial 23; run from the repository: EXT and WORK optional).
# Repro: backup put back over device A, written on before syncing, with sync_compact() after every import.
# Fleet of 3 (a, b, c). Ends with A's bundles refused for good by B and C:
#   "its clock goes backwards: it names op N of device X (a second history of it) as new, while its previous op had seen op N"
# and B, C keep an op of A pending forever; A's last insert never reaches them.
set -u
# MODE=explicit (default): SELECT sync_compact() after every import; MODE=auto1: no explicit call, compact_every = 1 in _sync_state
MODE=${MODE:-explicit}
EXT=${EXT:-$PWD/dist/sync0}
D=${WORK:-/tmp/t23}/r1; rm -rf $D; mkdir -p $D; cd $D
dev() { sqlite3 -bail -cmd ".load $EXT" "$1.db" "$2"; }
id()  { dev $1 "SELECT sync_device_id()"; }
send() {   # $1 sends a bundle addressed to $2; $2 imports it, then compacts (README: "run it when you like, after syncing")
  rm -f $1-$2.bundle
  dev $1 "SELECT sync_bundle_out('$(id $2)', '$1-$2.bundle')" >/dev/null
  if [ $MODE = explicit ]; then C="SELECT sync_compact();"; else C=""; fi
  dev $2 "SELECT sync_bundle_in('$1-$2.bundle') ->> '\$.applied_count'; $C" >/dev/null 2>$1-$2.err \
    || echo "  $1 -> $2 refused: $(cat $1-$2.err)"
}
round() { for p in "a b" "a c" "b a" "b c" "c a" "c b"; do send $p; done; }
for x in a b c; do
  dev $x "SELECT sync_init(); CREATE TABLE items(id TEXT PRIMARY KEY, v TEXT); SELECT sync_enable('items');" >/dev/null
  [ $MODE = auto1 ] && dev $x "INSERT OR REPLACE INTO _sync_state(name, value) VALUES ('compact_every', 1)"
done
round; round
cp a.db a.bak                                           # backup of A (taken after it synced)
dev a "INSERT INTO items VALUES ('S','A1')"             # A writes after the backup ...
round; round                                            # ... and it reaches B and C
cp a.bak a.db                                           # backup put back over A (same inode)
dev a "INSERT INTO items VALUES ('S','Arest') ON CONFLICT(id) DO UPDATE SET v=excluded.v"   # written on before syncing
dev a "INSERT INTO items VALUES ('T','Arest')"
dev b "INSERT INTO items VALUES ('b1','B')"
dev c "INSERT INTO items VALUES ('c1','C')"
echo "syncing after the restore:"; round; round
dev a "INSERT INTO items VALUES ('a-final','A')"
echo "syncing after A's last write:"; round; round; round; round
for x in a b c; do
  echo "== $x: rows: $(sqlite3 $x.db "SELECT group_concat(id||'='||v, ' ') FROM (SELECT * FROM items ORDER BY 1)")"
  echo "   pending: $(dev $x "SELECT sync_status() -> '\$.pending'")  lost: $(sqlite3 $x.db 'SELECT count(*) FROM sync_lost')"
done
