#!/bin/bash
# The leader is SIGKILLed under a write load from clients that record every
# acknowledged SET; after failover, and after the old leader is restarted,
# every acknowledged value is readable through every node. Engine: $4.
. "$(dirname "$0")/lib.sh"
PROTO=${4:?protocol}
start_cluster c 3 "$PROTO" "$BASE"
wait_leader c
L=$(leader_node c)
# Writers on both followers (they forward, then ride out the election).
pids=""; k=0
for n in 1 2 3; do
  [ "$n" = "$L" ] && continue
  k=$((k + 1))
  writer "$(client_port "$n" "$BASE")" "w$k-" "$DIR/acked$k" &
  pids="$pids $!"
done
sleep 2
log "killing leader node $L under load"
"$SABHA" cluster kill leader --dir "$DIR/c" >/dev/null || die "cluster kill leader"
sleep 4
wait_leader c
NL=$(leader_node c)
[ "$NL" != "$L" ] || die "node $L is still leader"
log "node $NL leads now; writing on"
sleep 1
kill $pids; wait $pids 2>/dev/null
cat "$DIR"/acked* >"$DIR/acked"
n_acked=$(wc -l <"$DIR/acked")
[ "$n_acked" -ge 20 ] || die "only $n_acked writes were acknowledged"
log "$n_acked writes acknowledged; restarting node $L"
"$SABHA" cluster restart "$L" --dir "$DIR/c" >/dev/null || die "restart"
wait_leader c
sleep 1
ports=""; for n in 1 2 3; do ports="$ports $(client_port $n "$BASE")"; done
lost=$(verify_keys "$DIR/acked" $ports)
expect 0 "$lost"
log "ok: 0 of $n_acked acknowledged writes lost, through every node"
