#!/bin/sh
# Install tests of make dist's packages (make test-dist): the wheel in a fresh venv (sqlean.py,
# apsw, pysqlite3, the stdlib sqlite3), the npm tarball with better-sqlite3@12, the release archive
# (checksum, sqlite3 shell), and its library from Ruby, PHP, Perl and Tcl. One line per check.
# Usage: tests/dist/run.sh DIST_DIR
set -eu
start=$(date +%s)
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dist=$(cd "$1" && pwd)
work="$root/target/dist-test"
# kept between runs and checkouts: better-sqlite3 compiled here (see below), in the user's cache
# (or target/dist-cache where that cannot be made)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/sqlite-sync-dist"
mkdir -p "$cache/prebuilds" 2>/dev/null || cache="$root/target/dist-cache"
rm -rf "$work"
mkdir -p "$work" "$cache/prebuilds"

one() {   # the one file in DIST_DIR that matches a pattern
    set -- $dist/$1
    if [ $# != 1 ] || [ ! -f "$1" ]; then echo "FAIL dist: not exactly one file: $*" >&2; exit 1; fi
    echo "$1"
}
whl=$(one 'sqlite_sync_ext-*.whl')
tgz=$(one 'sqlite-sync-ext-[0-9]*.tgz')
archive=$(one 'sqlite-sync-ext-*.tar.gz')
pip_q="-q --disable-pip-version-check"

# Python: the wheel FILE (our package is on no registry), the drivers from PyPI
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install $pip_q "$whl" sqlean.py apsw
"$work/venv/bin/pip" install $pip_q --only-binary :all: pysqlite3-binary 2>/dev/null ||
    echo "skip dist/python pysqlite3: no pysqlite3-binary wheel for $("$work/venv/bin/python" -V)"
# each driver in a process of its own: one process loads the extension through one SQLite
# library only (two_libraries.py)
for driver in sqlean apsw pysqlite3 sqlite3; do
    "$work/venv/bin/python" "$here/python_sync.py" "$work/python" "$driver"
done
"$work/venv/bin/python" "$here/two_libraries.py" "$work/two-libraries"
# the README's quick start, as it stands there, prints what the README says it prints
mkdir -p "$work/quick-start"
awk '/^## Quick start/ { on = 1 } on && /^```python$/ { inside = 1; next }
     inside && /^```$/ { exit } inside { print }' "$root/README.md" > "$work/quick-start/qs.py"
want=$(sed -n 's/.*print(.*# \(.*\)$/\1/p' "$work/quick-start/qs.py")
got=$(cd "$work/quick-start" && "$work/venv/bin/python" qs.py)
[ -n "$want" ] && [ "$got" = "$want" ] ||
    { echo "FAIL dist/python the README's quick start printed '$got', the README says '$want'" >&2; exit 1; }
echo "ok   dist/python the README's quick start prints $got"
# the system Python, when it is another interpreter: its stdlib sqlite3 (Debian's loads extensions)
if [ -x /usr/bin/python3 ] && [ "$(/usr/bin/python3 -c 'import sys; print(sys.prefix)')" != \
    "$("$work/venv/bin/python" -c 'import sys; print(sys.base_prefix)')" ]; then
    if /usr/bin/python3 -m venv "$work/venv-system" >/dev/null 2>&1; then
        "$work/venv-system/bin/pip" install $pip_q --no-index "$whl"
        "$work/venv-system/bin/python" "$here/python_sync.py" "$work/python-system" sqlite3
    else
        echo "skip dist/python /usr/bin/python3: it cannot make a venv (apt-get install python3-venv)"
    fi
fi

# Node: a fresh folder. better-sqlite3 downloads its binary from GitHub, or else compiles it (1.5
# to 3 minutes on 2 cores): a binary compiled here (or by tests/smoke, in its cache) is kept in
# the cache above as a local prebuild, which its installer (prebuild-install) takes first.
keep_prebuild() {   # keep_prebuild node_modules/better-sqlite3
    [ -f "$1/build/Release/better_sqlite3.node" ] || return 0
    name=$(node -p "'better-sqlite3-v' + require('$1/package.json').version + '-node-v' + \
        process.versions.modules + '-' + process.platform + '-' + process.arch + '.tar.gz'")
    [ -f "$cache/prebuilds/$name" ] || tar -czf "$cache/prebuilds/$name" -C "$1" build/Release/better_sqlite3.node
}
smoke_node="${SYNC_SMOKE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sqlite-sync-smoke}/node-$(node --version)"
for built in "$smoke_node" "$root/target/smoke/node"; do
    keep_prebuild "$built/node_modules/better-sqlite3"
done
mkdir -p "$work/node/w"
(cd "$work/node" && npm init -y >/dev/null &&
    npm_config_better_sqlite3_local_prebuilds="$cache/prebuilds" \
        npm install --no-audit --no-fund --loglevel=error "$tgz" better-sqlite3@12 >/dev/null)
keep_prebuild "$work/node/node_modules/better-sqlite3"
NODE_PATH="$work/node/node_modules" node "$here/node_sync.js" "$work/node/w"

# the release archive: checksum, contents, the sqlite3 shell loads it
mkdir -p "$work/archive"
cp "$archive" "$archive.sha256" "$work/archive/"
(cd "$work/archive" && sha256sum -c --quiet "$(basename "$archive").sha256")
echo "ok   dist/archive $(basename "$archive"): sha256sum -c"
tar -xzf "$archive" -C "$work/archive"
libdir="$work/archive/$(basename "$archive" .tar.gz)"
[ -f "$libdir/README.md" ] || { echo "FAIL dist/archive: no README.md in it" >&2; exit 1; }
version=$(basename "$archive" | sed 's/^sqlite-sync-ext-\([^-]*\)-.*/\1/')
got=$(sqlite3 :memory: ".load $libdir/sync0" "SELECT sync_version()")
[ "$got" = "$version" ] || { echo "FAIL dist/archive: sync_version() is '$got', not $version" >&2; exit 1; }
echo "ok   dist/archive sqlite3 shell (SQLite $(sqlite3 --version | cut -d' ' -f1)): .load, sync_version() = $got"

# other languages' drivers, from Debian's packages, load the archive's library
sh "$here/drivers.sh" "$libdir" "$work/drivers"

echo "ok   dist: every check passed in $(($(date +%s) - start))s"
