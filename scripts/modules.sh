#!/bin/sh
# Which module uses which, and whether they form a cycle, at two levels:
#   files:   each file of src/ (apply/import, log/clock, merge, …) and the files it names
#            (`crate::log::clock::…` is log/clock; `super::x` is a sibling file, or the folder's
#            mod.rs for an item defined there; a folder's mod.rs naming its own children is
#            its front door re-exporting them, not a use)
#   stages:  the top-level modules (a folder is one), and the others each one names
# Prints "module -> used …" lines per level, then "no cycle", or the modules on one and exit 1.
#   sh scripts/modules.sh
cd "$(dirname "$0")/../src" || exit 2

node() { # file path -> module name
    n=${1%.rs}
    n=${n%/mod}
    echo "$n"
}

edges=$(for f in *.rs */*.rs; do
    m=$(node "$f")
    dir=$(dirname "$f")
    {
        grep -o 'crate::[a-z_]*\(::[a-z_]*\)\?' "$f" | sed 's/^crate:://' | while IFS= read -r p; do
            top=${p%%::*}
            sub=${p#*::}
            if [ "$sub" != "$p" ] && [ -f "$top/$sub.rs" ]; then echo "$top/$sub"; else echo "$top"; fi
        done
        if [ "$dir" != . ] && [ "$(basename "$f")" != mod.rs ]; then
            grep -o 'super::[a-z_]*' "$f" | sed 's/^super:://' | while IFS= read -r s; do
                if [ -f "$dir/$s.rs" ]; then echo "$dir/$s"; else echo "$dir"; fi
            done
        fi
    } | sort -u | while IFS= read -r d; do
        case "$d" in "$m" | "$m"/*) ;; *) echo "$m $d" ;; esac
    done
done)

stages=$(echo "$edges" | awk '{ split($1, a, "/"); split($2, b, "/"); if (a[1] != b[1]) print a[1], b[1] }' | sort -u)

status=0
check() { # title, edges
    echo "$1:"
    echo "$2" | awk '{ a[$1] = a[$1] " " $2 } END { for (m in a) print "  " m " ->" a[m] }' | sort
    if echo "$2" | tsort >/dev/null 2>/tmp/modules.$$; then
        echo "  no cycle"
    else
        echo "  cycles through:"
        grep -v "input contains a loop" /tmp/modules.$$ | sed 's/^tsort: /    /' | sort -u
        status=1
    fi
    rm -f /tmp/modules.$$
}
check files "$edges"
check stages "$stages"
exit $status
