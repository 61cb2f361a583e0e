#!/bin/sh
# Runs every sqlite3-shell case in this folder and compares its output with the expected file.
#   NAME.sql  is fed to `sqlite3` on a fresh database file, from the repository root;
#   NAME.sh   is run with $DB (a fresh database file path) and $SO (the extension) set;
# both must print exactly NAME.expected (stdout and stderr together).
# Usage: tests/shell/run.sh dist/sync0.so
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
SO=$(cd "$(dirname "$1")" && pwd)/$(basename "$1" .so)
export SO
failed=0
for case in "$here"/*.sql "$here"/*.sh; do
    name=$(basename "$case")
    [ "$name" = run.sh ] && continue
    base=${name%.*}
    work=$(mktemp -d)
    export DB="$work/test.db"
    if [ "${name##*.}" = sql ]; then
        (cd "$root" && sed "s|@SO@|$SO|g" "$case" | sqlite3 "$DB" 2>&1) > "$work/out"
    else
        (cd "$root" && sh "$case" 2>&1) > "$work/out"
    fi
    if diff -u "$here/$base.expected" "$work/out" > "$work/diff"; then
        echo "ok   shell/$base"
    else
        echo "FAIL shell/$base"
        cat "$work/diff"
        failed=1
    fi
    rm -rf "$work"
done
exit $failed
