#!/bin/sh
# The modules of src/ and the modules each one names (`crate::x`), as "module -> used" lines,
# then whether they form a cycle (tsort reports the modules on one).
#   sh scripts/modules.sh
cd "$(dirname "$0")/../src"
edges=$(for f in *.rs */*.rs; do
  m=$(basename "$f" .rs)
  [ "$m" = mod ] && m=$(dirname "$f")
  grep -o 'crate::[a-z_]*' "$f" | sed 's/crate:://' | sort -u | while read -r d; do
    [ "$d" != "$m" ] && echo "$m $d"
  done
done)
echo "$edges" | awk '{ a[$1] = a[$1] " " $2 } END { for (m in a) print m " ->" a[m] }' | sort
if echo "$edges" | tsort > /dev/null 2> /tmp/modules.$$; then
  echo "no cycle"
else
  echo "cycles through:"; grep -v "input contains a loop" /tmp/modules.$$ | sed 's/^tsort: /  /' | sort -u
fi
rm -f /tmp/modules.$$
