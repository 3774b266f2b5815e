#!/bin/bash
# A node removed while it was down learns it when it comes back (issue 12,
# "a removed node stops taking part and says so"). Three nodes grow to four
# with `sabha cluster add`; node 4 is killed, `sabha cluster remove 4`
# commits without it, a learner joins (the next change), and an operator
# starts node 4 again (as a machine not yet
# turned off would come back). Its log never holds its removal, so before
# this change it asked for votes at every election timeout, for ever. Now a
# member answers its first campaign with a notice: within a few seconds
# INFO on node 4 says removed:1, its log says why, its campaign counter
# stops, and a restart keeps it so (the notice is kept on its disk).
# Engine: $4.
. "$(dirname "$0")/lib.sh"
PROTO=${4:?protocol}
start_cluster c 3 "$PROTO" "$BASE"
wait_leader c
P4=$(client_port 4 "$BASE")
info4() { rcli "$P4" INFO sabha | tr -d '\r' | sed -n "s/^$1://p"; }
"$SABHA" cluster add --dir "$DIR/c" >"$DIR/add4" 2>&1 || { cat "$DIR/add4"; die "add 4"; }
grep -q "node 4 joined as a voter" "$DIR/add4" || die "node 4: $(cat "$DIR/add4")"
"$SABHA" cluster kill 4 --dir "$DIR/c" >/dev/null || die "kill 4"
"$SABHA" cluster remove 4 --dir "$DIR/c" >"$DIR/rm4" 2>&1 || { cat "$DIR/rm4"; die "remove 4"; }
grep -q "this node was removed" "$DIR/c/node4.log" && die "node 4 heard of it while down"
# The next change: the leader stops sending node 4 the log it would
# otherwise still send it after its removal, so nothing tells it now but
# the notice.
"$SABHA" cluster add --learner --dir "$DIR/c" >"$DIR/add5" 2>&1 || { cat "$DIR/add5"; die "add 5"; }
# The operator brings the machine back: cluster.conf forgets the removal
# so that `start` starts it, with the data it had.
sed -i '/^removed *=/d' "$DIR/c/cluster.conf"
"$SABHA" cluster start --dir "$DIR/c" >"$DIR/start4" 2>&1 || { cat "$DIR/start4"; die "start 4"; }
told=""
for _ in $(seq 1 100); do
  [ "$(info4 removed)" = 1 ] && { told=1; break; }
  sleep 0.1
done
[ -n "$told" ] || die "node 4 does not say removed:1 after 10 s (campaigns: $(info4 campaigns_started))"
grep -q "this node was removed from the group (membership of index [0-9]*, as a member told it" \
  "$DIR/c/node4.log" || die "node 4's log does not say why"
expect 0 "$(info4 voter)"
c1=$(info4 campaigns_started)
sleep 3
c2=$(info4 campaigns_started)
expect "$c1" "$c2"
log "node 4 was told after $c1 campaign(s), and asked no more in 3 s"
# The members kept their leader and term meanwhile.
wait_leader c
# Kept on its disk: after a restart it starts removed and never asks.
"$SABHA" cluster kill 4 --dir "$DIR/c" >/dev/null || die "kill 4 again"
sed -i '/^removed *=/d' "$DIR/c/cluster.conf"
"$SABHA" cluster start --dir "$DIR/c" >/dev/null 2>&1 || die "restart 4"
for _ in $(seq 1 50); do [ -n "$(info4 removed)" ] && break; sleep 0.1; done
expect 1 "$(info4 removed)"
sleep 2
expect 0 "$(info4 campaigns_started)"
log "ok: after a restart node 4 is still removed and started no campaign"
