#!/bin/bash
# `sabha cluster status` on a TLS cluster asks each node over TLS; a
# certificate of the cluster's CA is not enough, it must name the node
# asked. Node 1 of a two-node TLS cluster is restarted with node 2's
# certificate and key, as if another node (or whoever took its port with a
# stolen certificate) answered in its place: status must not take its
# answer as node 1's, and says why. (Before, the CA check passed and the
# impostor's role was shown as node 1's; `start` took it for node 1 too.)
# Uses BASE.
. "$(dirname "$0")/lib.sh"
start_cluster c 2 raft "$BASE" --tls
D="$DIR/c"
wait_leader c
status c >"$DIR/status0.out" 2>&1
grep -q "unverified" "$DIR/status0.out" && die "unverified before the swap: $(cat "$DIR/status0.out")"
log "node 1 restarted with node 2's certificate"
"$SABHA" cluster kill 1 --dir "$D" >/dev/null || die "kill 1"
for f in crt key; do
  mv "$D/node1.$f" "$DIR/node1.$f"
  cp -p "$D/node2.$f" "$D/node1.$f"
done
"$SABHA" cluster start --dir "$D" >"$DIR/start.out" 2>&1 &&
  die "start took node 2's certificate for node 1: $(cat "$DIR/start.out")"
grep -q 'node 1: .*it names "sabha-node-2", not "sabha-node-1"' "$DIR/start.out" ||
  die "start did not say why: $(cat "$DIR/start.out")"
status c >"$DIR/status1.out" 2>"$DIR/status1.err"
cat "$DIR/status1.out" "$DIR/status1.err"
grep -q "^node=1 role=unverified " "$DIR/status1.out" || die "node 1's role taken from an impostor"
grep -q '^sabha cluster: node 1: .*it names "sabha-node-2", not "sabha-node-1"' \
  "$DIR/status1.err" || die "status did not say why"
grep -q "^node=2 role=[a-z]*candidate\|^node=2 role=leader \|^node=2 role=follower " \
  "$DIR/status1.out" || die "node 2's own certificate was not taken"
log "ok"
