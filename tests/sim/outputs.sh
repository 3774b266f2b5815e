#!/bin/sh
# The summary has every key, once; --json writes them as one object;
# --history writes one JSON line per operation. Usage: outputs.sh SABHA DIR
set -eu
bin=$1
dir=$2
mkdir -p "$dir"
json=$dir/summary.json
hist=$dir/history.jsonl
rm -f "$json" "$hist"
out=$("$bin" sim --protocol raft --nodes 3 --seed 3 --ops 200 --clients 4 \
  --faults partition,crash --json "$json" --history "$hist")
for key in protocol runs runs_failed ops_ok ops_failed ops_indeterminate \
  safety_violations linearizability_failures acked_writes_lost elections \
  latency_ms_p50 latency_ms_p99 throughput_ops_per_s sim_events_per_s \
  liveness_failures trace_hash; do
  n=$(echo "$out" | grep -c "^$key: ")
  if [ "$n" -ne 1 ]; then
    echo "FAIL: key $key appears $n times in:"
    echo "$out"
    exit 1
  fi
  if [ "$key" != protocol ] && [ "$key" != trace_hash ] &&
    ! grep -q "\"$key\":" "$json"; then
    echo "FAIL: $json lacks $key"
    exit 1
  fi
done
if echo "$out" | grep -q "^first_failing_seed:"; then
  echo "FAIL: first_failing_seed printed for a passing run"
  exit 1
fi
lines=$(wc -l <"$hist")
if [ "$lines" -ne 200 ]; then
  echo "FAIL: $hist has $lines lines, expected 200 (one per operation)"
  exit 1
fi
if ! head -1 "$hist" | grep -q '"client":.*"op":.*"call_us":'; then
  echo "FAIL: $hist does not look like a history: $(head -1 "$hist")"
  exit 1
fi
# Several seeds: no trace_hash line.
if "$bin" sim --seeds 1..2 --ops 50 | grep -q '^trace_hash:'; then
  echo "FAIL: trace_hash printed for several seeds"
  exit 1
fi
echo "ok: summary keys, --json and --history"
