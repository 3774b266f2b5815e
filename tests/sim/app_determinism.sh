#!/bin/sh
# Application workloads replay too: the same seed gives the same trace_hash
# and state_hash twice, another seed a different trace_hash.
# Usage: app_determinism.sh SABHA
set -eu
bin=$1
run() {
  "$bin" sim --protocol "$1" --workload "$2" --nodes 5 --seed "$3" --ops 300 \
    --faults all | sed -n 's/^\(trace_hash\|state_hash\): //p' | tr '\n' ' '
}
for protocol in raft multipaxos; do
  for workload in ledger mixed; do
    a=$(run "$protocol" "$workload" 7)
    b=$(run "$protocol" "$workload" 7)
    c=$(run "$protocol" "$workload" 8)
    if [ -z "$a" ] || [ "$a" != "$b" ]; then
      echo "FAIL: $protocol $workload seed 7 gave '$a' then '$b'"
      exit 1
    fi
    if [ "$a" = "$c" ]; then
      echo "FAIL: $protocol $workload seeds 7 and 8 both gave $a"
      exit 1
    fi
    echo "ok: $protocol $workload seed 7 -> $a twice"
  done
done
