# Sourced by the shell benches: `two_devices path/to/sync0` makes, in a new temporary directory
# it enters ($D), device a.db holding 100,000 rows of t(id, title, n) and device b.db that
# imported them, and sets $SO (the library) and $B (b's device id). With `both`, a has also
# imported b's bundle, so each knows what the other holds.
two_devices() {
    SO=$(realpath "$1"); D=$(mktemp -d); cd "$D"
    S="CREATE TABLE t(id INTEGER PRIMARY KEY, title TEXT, n INTEGER); SELECT sync_enable('t');"
    sqlite3 a.db ".load $SO" "SELECT sync_init();" "$S" "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL
      SELECT i + 1 FROM c WHERE i < 100000) INSERT INTO t SELECT i, 'title number ' || i, i * 7 FROM c;" \
      "SELECT sync_bundle_out(NULL, 'a1.bundle');" > /dev/null
    sqlite3 b.db ".load $SO" "SELECT sync_init();" "$S" "SELECT sync_bundle_in('a1.bundle');" \
      "SELECT sync_bundle_out(NULL, 'b0.bundle');" > /dev/null
    B=$(sqlite3 b.db ".load $SO" "SELECT sync_device_id();")
    if [ "${2:-}" = both ]; then
        sqlite3 a.db ".load $SO" "SELECT sync_bundle_in('b0.bundle');" > /dev/null
    fi
}
