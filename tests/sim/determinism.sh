#!/bin/sh
# Same options, same run: two runs of one seed print the same trace_hash,
# and another seed prints a different one. Usage: determinism.sh SABHA
# [GROUPS] (consensus groups per node, sabha sim --groups; 1 by default)
set -eu
bin=$1
groups=${2:-1}
hash_of() {
  "$bin" sim --protocol "$1" --nodes 5 --groups "$groups" --seed "$2" \
    --ops 300 --faults all 2>/dev/null | sed -n 's/^trace_hash: //p'
}
for protocol in $("$bin" help | sed -n 's/^protocols in this build://p'); do
  a=$(hash_of "$protocol" 7)
  b=$(hash_of "$protocol" 7)
  c=$(hash_of "$protocol" 8)
  if [ -z "$a" ] || [ "$a" != "$b" ]; then
    echo "FAIL: $protocol seed 7 gave trace_hash '$a' then '$b'"
    exit 1
  fi
  if [ "$a" = "$c" ]; then
    echo "FAIL: $protocol seeds 7 and 8 gave the same trace_hash $a"
    exit 1
  fi
  echo "ok: $protocol seed 7 -> $a twice, seed 8 -> $c"
done
