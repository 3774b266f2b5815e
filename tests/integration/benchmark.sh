#!/bin/bash
# redis-benchmark -t set,get runs without errors against a 3-node cluster of
# the engine given as $4, through a follower (so every command is forwarded)
# and through the leader; afterwards every node holds the same keys.
. "$(dirname "$0")/lib.sh"
PROTO=${4:?protocol}
start_cluster c 3 "$PROTO" "$BASE"
wait_leader c
L=$(leader_node c); F=$(follower_node c)
for n in $F $L; do
  p=$(client_port "$n" "$BASE")
  log "redis-benchmark against node $n (port $p)"
  out=$(timeout 120 redis-benchmark -p "$p" -t set,get -n 20000 -c 16 -q 2>&1 | tr '\r' '\n')
  echo "$out" | grep -qiE 'error|aborting' && { echo "$out" | grep -iE 'error|aborting' | head; die "redis-benchmark saw errors"; }
  echo "$out" | grep -E '^(SET|GET): [0-9.]+ requests per second'
  [ "$(echo "$out" | grep -cE '^(SET|GET): [0-9.]+ requests per second')" = 2 ] || die "redis-benchmark did not finish both tests"
done
log "every node applied the same writes"
sleep 1
for n in 1 2 3; do
  expect OK "$(rcli $(client_port "$n" "$BASE") SET probe$n x)"
done
sleep 0.5
want=$(rcli $(client_port "$L" "$BASE") DBSIZE)
for n in 1 2 3; do
  got=$(printf 'SABHA.STALE on\nDBSIZE\n' | rcli $(client_port "$n" "$BASE") | tail -1)
  expect "$want" "$got"
done
log "ok"
