#!/bin/sh
# A deliberately broken safety rule must be caught: `sabha sim --bug NAME`
# over the standard fault mix (or the one given) exits 1 with runs_failed
# above 0.
# Usage: expect_caught.sh SABHA BUG [PROTOCOL [SEEDS [WORKLOAD [FAULTS
#        [NODES [GROUPS]]]]]]
set -eu
bin=$1
bug=$2
protocol=${3:-raft}
seeds=${4:-1..300}
workload=${5:-kv}
faults=${6:-all}
nodes=${7:-5}
groups=${8:-1}
rc=0
out=$("$bin" sim --protocol "$protocol" --nodes "$nodes" --groups "$groups" \
  --seeds "$seeds" \
  --ops 1000 --workload "$workload" --faults "$faults" --bug "$bug" \
  2>/dev/null) || rc=$?
echo "$out"
failed=$(echo "$out" | sed -n 's/^runs_failed: //p')
if [ "$rc" -ne 1 ]; then
  echo "FAIL: --bug $bug exited $rc, expected 1 (a run failed)"
  exit 1
fi
if [ -z "$failed" ] || [ "$failed" -eq 0 ]; then
  echo "FAIL: --bug $bug: runs_failed is '$failed', expected above 0"
  exit 1
fi
echo "ok: --bug $bug caught in $failed runs"
