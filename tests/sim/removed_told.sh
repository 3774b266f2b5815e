#!/bin/sh
# The membership nemesis reaches the case of issue 12: a node removed while
# it was down or cut off comes back and is stopped by a member's notice
# (docs/engines.md, "Removed nodes that were away"). Over the given seeds
# every run passes and at least one node was told (removed_told above 0).
# Usage: removed_told.sh SABHA PROTOCOL SEEDS
set -eu
out=$("$1" sim --protocol "$2" --nodes 5 --seeds "$3" --faults all,membership)
echo "$out" | grep -E '^(runs|runs_failed|removed_told):'
told=$(echo "$out" | sed -n 's/^removed_told: //p')
if [ -z "$told" ] || [ "$told" -eq 0 ]; then
  echo "FAIL: no removed node was told over seeds $3"
  exit 1
fi
