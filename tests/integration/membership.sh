#!/bin/bash
# Membership changes on a live cluster (issue 12): under writes, a 3-node
# cluster grows to 5 with `sabha cluster add` (a learner first, promoted
# once caught up; one stays a learner with --learner, then is removed),
# then shrinks back with `sabha cluster remove leader` (it hands over) and
# the removal of a follower. SABHA.MEMBERS, /status and /metrics agree,
# the removed nodes said so in their logs, a restart of the whole cluster
# keeps the membership, and every acknowledged write reads back. Engine: $4.
. "$(dirname "$0")/lib.sh"
PROTO=${4:?protocol}
start_cluster c 3 "$PROTO" "$BASE"
wait_leader c
lport() { client_port "$(leader_node c)" "$BASE"; }
voters() { rcli "$(lport)" SABHA.MEMBERS | grep -c "role=voter"; }
writer "$(client_port 1 "$BASE")" w "$DIR/acked" &
wpid=$!
"$SABHA" cluster add --dir "$DIR/c" >"$DIR/add4" 2>&1 || { cat "$DIR/add4"; die "add 4"; }
grep -q "node 4 joined as a voter" "$DIR/add4" || die "node 4: $(cat "$DIR/add4")"
"$SABHA" cluster add --learner --dir "$DIR/c" >"$DIR/add5" 2>&1 || { cat "$DIR/add5"; die "add 5"; }
rcli "$(lport)" SABHA.MEMBERS | grep -q "id=5 .*role=learner" || die "node 5 is no learner"
expect 4 "$(voters)"
"$SABHA" cluster remove 5 --dir "$DIR/c" >/dev/null || die "remove the learner"
"$SABHA" cluster add --dir "$DIR/c" >"$DIR/add6" 2>&1 || { cat "$DIR/add6"; die "add 6"; }
expect 5 "$(voters)"
log "5 voters: $(rcli "$(lport)" SABHA.MEMBERS | tr '\n' ' ')"
# The same in /status and /metrics, on any node.
http_get "$(http_port 6 "$BASE")" /status | grep -q '"members":\[{"id":1,' || die "no members in /status"
m=$(http_get "$(http_port 2 "$BASE")" /metrics | grep -c '^sabha_member{.*role="voter"')
expect 5 "$m"
L=$(leader_node c)
"$SABHA" cluster remove leader --dir "$DIR/c" >"$DIR/rm1" 2>&1 || { cat "$DIR/rm1"; die "remove leader"; }
grep -q "the leader: it handed over" "$DIR/rm1" || die "$(cat "$DIR/rm1")"
F=$(follower_node c)
"$SABHA" cluster remove "$F" --dir "$DIR/c" >/dev/null || die "remove follower $F"
expect 3 "$(voters)"
grep -q "this node was removed from the group" "$DIR/c/node$L.log" || die "node $L did not say it was removed"
status c | grep -q "node=$L role=removed" || die "status does not show node $L removed"
kill $wpid; wait $wpid 2>/dev/null
# A restart of every node keeps the membership (from the log, or the
# snapshot's), and the removed ones stay down.
"$SABHA" cluster stop --dir "$DIR/c" >/dev/null || die "stop"
"$SABHA" cluster start --dir "$DIR/c" >/dev/null 2>&1 || die "restart"
wait_leader c
expect 3 "$(voters)"
n=$(wc -l <"$DIR/acked")
[ "$n" -ge 20 ] || die "only $n writes acknowledged"
lost=$(verify_keys "$DIR/acked" "$(lport)")
expect 0 "$lost"
log "ok: 3 -> 5 -> 3 voters, $n acknowledged writes kept"
