#!/bin/sh
# Every engine, given the same seed and the same sequential workload (one
# client) without faults, ends in the same key-value state. Keys with a time
# to live are left out (--expiry off): when one expires depends on each
# engine's timing, and what the client does next on what it saw.
# Usage: same_state.sh SABHA
set -eu
bin=$1
for seed in 1 2 3; do
  out=$("$bin" sim --protocol all --seed "$seed" --clients 1 --ops 500 \
    --faults none --expiry off)
  row=$(echo "$out" | sed -n 's/^state_hash: *//p')
  echo "seed $seed state_hash: $row"
  distinct=$(echo "$row" | tr -s ' ' '\n' | sed '/^$/d' | sort -u | wc -l)
  engines=$(echo "$row" | tr -s ' ' '\n' | sed '/^$/d' | wc -l)
  [ "$engines" -ge 3 ] || { echo "FAIL: expected 3 engines, got $engines"; exit 1; }
  [ "$distinct" -eq 1 ] || { echo "FAIL: engines disagree on seed $seed"; exit 1; }
done
echo "ok"
