#!/bin/sh
# Smoke tests from other languages' drivers: Python (sqlean.py) and Node (better-sqlite3@12).
# Their packages are installed once into target/smoke (a minute on a fresh machine).
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

if ! (cd "$work/node" 2>/dev/null && node -e "require('better-sqlite3')" 2>/dev/null); then
    echo "smoke: installing better-sqlite3@12 into target/smoke/node" >&2
    mkdir -p "$work/node"
    (cd "$work/node" && [ -f package.json ] || (cd "$work/node" && npm init -y >/dev/null))
    (cd "$work/node" && npm install --no-audit --no-fund --loglevel=error better-sqlite3@12 >/dev/null)
fi
NODE_PATH="$work/node/node_modules" node "$here/smoke.js" "$so"
