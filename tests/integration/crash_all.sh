#!/bin/bash
# Every node is SIGKILLed at once while clients write; after a restart of the
# whole cluster every acknowledged value is readable. Engine: $4.
. "$(dirname "$0")/lib.sh"
PROTO=${4:?protocol}
start_cluster c 3 "$PROTO" "$BASE"
wait_leader c
pids=""
for n in 1 2 3; do
  writer "$(client_port "$n" "$BASE")" "w$n-" "$DIR/acked$n" &
  pids="$pids $!"
done
sleep 3
log "killing every node at once"
nodes=""
for n in 1 2 3; do nodes="$nodes $(cat "$DIR/c/node$n.pid")"; done
# Only the processes this test started, by their pids (checked by name).
for p in $nodes; do grep -q sabhad "/proc/$p/cmdline" || die "pid $p is not sabhad"; done
kill -KILL $nodes
sleep 0.5
kill $pids; wait $pids 2>/dev/null
cat "$DIR"/acked* >"$DIR/acked"
n_acked=$(wc -l <"$DIR/acked")
[ "$n_acked" -ge 20 ] || die "only $n_acked writes were acknowledged"
status c | grep -c role=down | grep -q 3 || die "some node survived"
log "$n_acked writes acknowledged; starting the cluster again"
"$SABHA" cluster start --dir "$DIR/c" >/dev/null || die "restart"
wait_leader c
ports=""; for n in 1 2 3; do ports="$ports $(client_port $n "$BASE")"; done
lost=$(verify_keys "$DIR/acked" $ports)
expect 0 "$lost"
log "ok: 0 of $n_acked acknowledged writes lost"
