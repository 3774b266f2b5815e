#!/bin/bash
# Preferred leaders (issue 12): a 3-node cluster started with
# `--priorities 1=1,2=1,3=10` has node 3 leading within 8 s, by a transfer
# (a priority_transfers count on the node that handed over); node 3 killed,
# another leads; node 3 restarted leads again within 8 s and keeps it. INFO,
# /metrics and SABHA.MEMBERS show the priorities; sabhad refuses a priority
# out of bounds or one that disagrees with the map. Engine: $4.
. "$(dirname "$0")/lib.sh"
PROTO=${4:?protocol}

# wait_node_leads NODE SECONDS: until NODE is the leader of cluster p.
wait_node_leads() {
  local i
  for i in $(seq 1 $(( $2 * 10 ))); do
    [ "$(leader_node p)" = "$1" ] && return 0
    sleep 0.1
  done
  status p
  die "node $1 does not lead after $2 s (leader: $(leader_node p))"
}
info() { rcli "$(client_port "$1" "$BASE")" INFO sabha | tr -d '\r' | sed -n "s/^$2://p"; }
transfers() { local n=0 i; for i in 1 2 3; do n=$(( n + $(info "$i" priority_transfers || echo 0) )); done; echo $n; }

out=$("$SABHAD" --id 1 --peers 1=127.0.0.1:1 --priority 1001 2>&1) && die "priority 1001 taken"
echo "$out" | grep -q "0..1000" || die "no bound named: $out"
out=$("$SABHAD" --id 1 --peers 1=127.0.0.1:1 --priority 4 --priorities 1=5 2>&1) && die "a disagreeing priority taken"
echo "$out" | grep -q "disagrees" || die "no disagreement named: $out"

# A port may be held for a moment by someone else's connection (a port
# in Linux's ephemeral range, 32768-60999, by an outgoing one): start again.
CLUSTERS="$DIR/p"
for try in 1 2 3; do
  "$SABHA" cluster start --dir "$DIR/p" --nodes 3 --protocol "$PROTO" \
    --base-port "$BASE" --priorities 1=1,2=1,3=10 >"$DIR/p.start" 2>&1 && break
  grep -q "is in use" "$DIR/p.start" && [ $try -lt 3 ] ||
    { cat "$DIR/p.start"; die "cluster start failed"; }
  log "a port is in use: again in a second"; sleep 1
done
wait_node_leads 3 8
expect 10 "$(info 3 priority)"
expect 1 "$(info 1 priority)"
expect 10 "$(metric "$(http_port 3 "$BASE")" sabha_priority)"
rcli "$(client_port 3 "$BASE")" SABHA.MEMBERS | grep -q "^id=3 .*priority=10" || die "SABHA.MEMBERS: no priority=10 for node 3"
t0=$(transfers)
log "node 3 leads; transfers so far: $t0"

"$SABHA" cluster kill 3 --dir "$DIR/p" >/dev/null || die "kill 3"
for i in $(seq 1 100); do
  l=$(leader_node p); [ -n "$l" ] && [ "$l" != 3 ] && break; sleep 0.1
done
[ -n "$l" ] && [ "$l" != 3 ] || die "no other leader with node 3 down"
sleep 1
"$SABHA" cluster restart 3 --dir "$DIR/p" >/dev/null || die "restart 3"
wait_node_leads 3 8
t1=$(transfers)
[ "$t1" -gt "$t0" ] || die "node 3 leads again without a transfer ($t0 -> $t1)"
# No churn: it keeps leadership, and nobody tries to move it.
sleep 2
expect 3 "$(leader_node p)"
expect "$t1" "$(transfers)"
rcli "$(client_port 1 "$BASE")" SET k v >/dev/null
expect v "$(rcli "$(client_port 2 "$BASE")" GET k)"
log "ok: node 3 led at start and after its restart ($t1 transfers)"
