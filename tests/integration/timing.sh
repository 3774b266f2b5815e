#!/bin/bash
# Adaptive timing on a real cluster (issue 12): three nodes started with
# `timing = adaptive` measure their round trips to each other over TCP and,
# on loopback, keep the election timeout at the floor (150 ms, heartbeat
# 30 ms), quicker than the fixed default of 500 ms; INFO and /metrics show
# the timing and every peer's round trip; writes go through; a killed leader
# is replaced within a few seconds. sabhad refuses bounds out of order and
# an unknown timing mode. Engine: $4.
. "$(dirname "$0")/lib.sh"
PROTO=${4:?protocol}

out=$("$SABHAD" --id 1 --peers 1=127.0.0.1:1 --adaptive-timing \
  --election-timeout-floor-ms 600 --election-timeout-ceiling-ms 500 2>&1) &&
  die "a floor above the ceiling taken"
echo "$out" | grep -q "election-timeout-floor-ms" || die "no bound named: $out"
out=$("$SABHAD" --id 1 --peers 1=127.0.0.1:1 --timing sometimes 2>&1) &&
  die "timing sometimes taken"
echo "$out" | grep -q "fixed or adaptive" || die "no modes named: $out"

info() { rcli "$(client_port "$1" "$BASE")" INFO sabha | tr -d '\r' | sed -n "s/^$2://p"; }

start_cluster t 3 "$PROTO" "$BASE" --set timing=adaptive
wait_leader t
# Pings go every 50 ms: a second gives each node many samples of each peer.
sleep 2
for n in 1 2 3; do
  expect adaptive "$(info $n timing)"
  expect 150 "$(info $n election_timeout_ms_min)"
  expect 300 "$(info $n election_timeout_ms_max)"
  expect 30 "$(info $n heartbeat_ms)"
  peers=$(info $n peer_rtt_us)
  [ "$(echo "$peers" | tr ',' '\n' | grep -c '=')" = 2 ] ||
    die "node $n: not two peers measured: '$peers'"
  # Loopback: each smoothed round trip well under 100 ms.
  for rtt in $(echo "$peers" | tr ',' '\n' | sed 's/^[0-9]*=\([0-9]*\)\/.*/\1/'); do
    [ "$rtt" -gt 0 ] && [ "$rtt" -lt 100000 ] || die "node $n: round trip $rtt us"
  done
done
hp=$(http_port 1 "$BASE")
expect 1 "$(metric "$hp" sabha_timing_adaptive)"
expect 0.15 "$(metric "$hp" sabha_election_timeout_seconds)"
http_get "$hp" /metrics | grep -q '^sabha_peer_rtt_seconds{peer="2"}' ||
  die "/metrics: no round trip to peer 2"
log "every node measured its peers: $(info 1 peer_rtt_us) (node 1)"

lp=$(client_port "$(leader_node t)" "$BASE")
for i in $(seq 1 50); do rcli "$lp" SET "k$i" "v$i" >/dev/null || die "SET k$i"; done
old=$(leader_node t)
"$SABHA" cluster kill "$old" --dir "$DIR/t" >/dev/null || die "kill $old"
t0=$(date +%s%N)
for i in $(seq 1 50); do
  l=$(leader_node t); [ -n "$l" ] && [ "$l" != "$old" ] && break; sleep 0.1
done
[ -n "$l" ] && [ "$l" != "$old" ] || die "no new leader within 5 s"
log "node $l leads $(( ($(date +%s%N) - t0) / 1000000 )) ms after node $old was killed"
expect v50 "$(rcli "$(client_port "$l" "$BASE")" GET k50)"

# Fixed timing says so.
start_cluster f 1 "$PROTO" $(( BASE + 3 ))
expect fixed "$(rcli $(( BASE + 3 )) INFO sabha | tr -d '\r' | sed -n 's/^timing://p')"
log "ok"
