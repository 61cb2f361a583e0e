# The README's worked example is what `make demo` prints: sql/demo.sql is run as `make demo`
# runs it (from a folder with dist/sync0 and target/demo/), and its output compared with the
# README's block, device ids aside (they are random).
set -eu
dir=$(dirname "$DB")
mkdir -p "$dir/dist" "$dir/target/demo"
cp "$SO.so" "$dir/dist/sync0.so"
ids='s/[0-9a-f]\{32\}/<id>/g'
(cd "$dir" && sqlite3 < "$OLDPWD/sql/demo.sql" 2>&1) | sed "$ids" > "$dir/printed"
awk '/^<!-- make demo prints this block/ { on = 1; next }
     on && /^```text$/ { inside = 1; next }
     inside && /^```$/ { exit }
     inside { print }' README.md | sed "$ids" > "$dir/readme"
if diff -u "$dir/readme" "$dir/printed"; then echo "the README shows what make demo prints"; fi
