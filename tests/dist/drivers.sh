#!/bin/sh
# Two devices sync through a bundle file from Ruby, PHP, Perl and Tcl with Debian's drivers
# (tests/dist/drivers/*), loading LIB_DIR/sync0.so. Missing packages are installed with apt-get
# when run as root; otherwise those languages are skipped with a message saying why.
# Usage: tests/dist/drivers.sh LIB_DIR WORK_DIR
set -eu
here=$(cd "$(dirname "$0")" && pwd)
lib=$(cd "$1" && pwd -P)          # PHP compares sqlite3.extension_dir with the real path
work=$2

packages() {
    case $1 in
    ruby) echo "ruby ruby-sqlite3" ;;
    php) echo "php-cli php-sqlite3" ;;
    perl) echo "libdbd-sqlite3-perl" ;;
    tcl) echo "tcl libsqlite3-tcl" ;;
    esac
}
have() {
    case $1 in
    ruby) ruby -e 'require "sqlite3"' ;;
    php) php -r 'exit(class_exists("SQLite3") ? 0 : 1);' ;;
    perl) perl -MDBD::SQLite -e 1 ;;
    tcl) echo 'if {[catch {package require sqlite3}]} {exit 1}' | tclsh ;;
    esac >/dev/null 2>&1
}

missing=""
for lang in ruby php perl tcl; do
    have $lang || missing="$missing $(packages $lang)"
done
if [ -n "$missing" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "drivers: installing$missing (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1 || {
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends $missing >/dev/null
    }
fi

for lang in ruby php perl tcl; do
    if ! have $lang; then
        echo "skip dist/$lang: Debian packages $(packages $lang) are not installed and this is not root with apt-get (install them: apt-get install -y $(packages $lang))"
        continue
    fi
    mkdir -p "$work/$lang"
    case $lang in
    ruby) ruby "$here/drivers/ruby.rb" "$lib" "$work/ruby" ;;
    php) php -d sqlite3.extension_dir="$lib" "$here/drivers/php.php" "$work/php" ;;
    perl) perl "$here/drivers/perl.pl" "$lib" "$work/perl" ;;
    tcl) tclsh "$here/drivers/tcl.tcl" "$lib" "$work/tcl" ;;
    esac
done
