#!/bin/bash
# A peer with the wrong secret, of another cluster, or with a setting every
# member must share (--dedup-max, --dedup-window-ms) set otherwise, is
# refused at the handshake: it never exchanges a consensus message, the
# refusal is counted by reason, and the right settings let it back in.
. "$(dirname "$0")/lib.sh"
start_cluster c 3 raft "$BASE" --secret s3cret-one-of-the-test
grep -qx "s3cret-one-of-the-test" "$DIR/c/secret" || die "the --secret is not in DIR/secret"
wait_leader c
H1=$(http_port 1 "$BASE"); H3=$(http_port 3 "$BASE")
expect OK "$(rcli $(client_port 1 "$BASE") SET a 1)"
CONF=$DIR/c/node3.conf
cp "$CONF" "$DIR/node3.conf.good"

# Handshakes between node 1 and node 3 that either side refused for REASON,
# as node 1 counts them (it refuses a stranger's HELLO itself; a wrong MAC
# is found by the dialer, node 3, which tells node 1).
refused_by_1() {
  http_get "$H1" /metrics | sed -n "s/^sabha_handshakes_refused\(_by_peer\)\{0,1\}_total{reason=\"$1\"} //p" |
    awk '{s += $1} END {print s + 0}'
}

try_bad() { # REASON: node 3 restarted with a bad setting stays outside
  "$SABHA" cluster restart 3 --dir "$DIR/c" >/dev/null || die "restart"
  local i
  for i in $(seq 1 40); do [ "$(refused_by_1 "$1")" -gt 0 ] && break; sleep 0.1; done
  [ "$(refused_by_1 "$1")" -gt 0 ] || die "node 1 counted no '$1' refusal"
  sleep 1
  expect 0 "$(http_get "$H3" /status | sed -n 's/.*"peers_connected":\([0-9]*\).*/\1/p')"
  grep -q "refus" "$DIR/c/node3.log" || die "node 3 logged no refusal"
}

log "wrong secret"
(umask 077 && echo "a wrong secret, long enough" >"$DIR/wrong-secret")
sed -i "s|^secret-file = .*|secret-file = $DIR/wrong-secret|" "$CONF"
try_bad auth
log "wrong cluster id"
cp "$DIR/node3.conf.good" "$CONF"
sed -i 's/^cluster-id = .*/cluster-id = another-cluster/' "$CONF"
try_bad cluster
log "another --dedup-max (it decides replies: members must agree)"
cp "$DIR/node3.conf.good" "$CONF"
echo "dedup-max = 5000" >>"$CONF"
try_bad settings
grep -q "same --dedup-max" "$DIR/c/node3.log" "$DIR/c/node1.log" || die "no word of --dedup-max"
log "another --dedup-window-ms (it decides replies too)"
cp "$DIR/node3.conf.good" "$CONF"
echo "dedup-window-ms = 1000" >>"$CONF"
try_bad settings
# Its digest (docs/wire.md): dedup-max, and the window XOR 5000 from bit 38.
DIGEST=$(( 100000 | (1000 ^ 5000) << 38 ))
grep -q "settings $DIGEST\|with $DIGEST" "$DIR/c/node3.log" "$DIR/c/node1.log" ||
  die "no refusal for the settings digest $DIGEST"
expect OK "$(rcli $(client_port 1 "$BASE") SET b 2)"
log "the right settings: node 3 joins and catches up"
cp "$DIR/node3.conf.good" "$CONF"
"$SABHA" cluster restart 3 --dir "$DIR/c" >/dev/null || die "restart"
for i in $(seq 1 50); do
  [ "$(http_get "$H3" /status | sed -n 's/.*"peers_connected":\([0-9]*\).*/\1/p')" = 2 ] && break
  sleep 0.1
done
expect 1 "$(rcli $(client_port 3 "$BASE") GET a)"
log "ok"
