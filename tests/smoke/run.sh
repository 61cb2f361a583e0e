#!/bin/sh
# Smoke tests from other languages' drivers: Python (sqlean.py) and Node (better-sqlite3@12).
# Their packages are installed once: sqlean.py into target/smoke, better-sqlite3 (which npm
# builds from source where no prebuilt binary can be fetched: three minutes here) into the
# user's cache, per Node version, so that a fresh checkout does not build it again
# (SYNC_SMOKE_CACHE picks another place).
# Usage: tests/smoke/run.sh dist/sync0.so
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
so=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
work="$root/target/smoke"
mkdir -p "$work"

if ! "$work/venv/bin/python" -c "import sqlean" 2>/dev/null; then
    echo "smoke: installing sqlean.py into target/smoke/venv" >&2
    python3 -m venv "$work/venv"
    "$work/venv/bin/pip" install -q sqlean.py
fi
"$work/venv/bin/python" "$here/smoke.py" "$so"

node_dir="${SYNC_SMOKE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sqlite-sync-smoke}/node-$(node --version)"
if ! mkdir -p "$node_dir" 2>/dev/null; then
    node_dir="$work/node"
fi
if ! (cd "$node_dir" 2>/dev/null && node -e "require('better-sqlite3')" 2>/dev/null); then
    echo "smoke: installing better-sqlite3@12 into $node_dir" >&2
    mkdir -p "$node_dir"
    (cd "$node_dir" && [ -f package.json ] || (cd "$node_dir" && npm init -y >/dev/null))
    (cd "$node_dir" && npm install --no-audit --no-fund --loglevel=error better-sqlite3@12 >/dev/null)
fi
NODE_PATH="$node_dir/node_modules" node "$here/smoke.js" "$so"
