#!/bin/sh
# Makes sure the build and test prerequisites are here: libclang with its headers (bindgen, run by
# sqlite-loadable's build, needs them) and the sqlite3 shell. As root with apt-get, installs what
# is missing; otherwise names the packages to install and fails.
set -eu

have_libclang() {
    # bindgen needs the library and clang's own headers (stdarg.h, stddef.h)
    ls /usr/lib/llvm-*/lib/libclang*.so* /usr/lib/*/libclang*.so* >/dev/null 2>&1 &&
        find /usr/lib/llvm-* /usr/lib/clang -name stdarg.h 2>/dev/null | grep -q .
}

missing=""
have_libclang || missing="$missing libclang-dev"
command -v sqlite3 >/dev/null 2>&1 || missing="$missing sqlite3"
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "prereqs: installing$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q $missing >/dev/null 2>&1 || {
        apt-get update -q >/dev/null
        apt-get install -y -q $missing >/dev/null
    }
    exit 0
fi
echo "prereqs: missing$missing. Install them first, e.g.: sudo apt-get install -y$missing" >&2
exit 1
