#!/bin/bash
# A follower's forwarding link is a TLS client of the leader's client port;
# a certificate of the cluster's CA is not enough there, it must name the
# leader. Nodes 1 and 2 of a three-node TLS cluster run, each told that the
# other's client port is where an impostor listens (what a hostile network
# does by redirecting the connection): `openssl s_server` showing node 3's
# certificate, of the right CA but not of the node the link dialed. A write
# sent to the follower must not reach the impostor: before the check, the
# handshake completed and the impostor read the follower's SABHA.FORWARDED
# and the client's command with its key and value.
. "$(dirname "$0")/lib.sh"
command -v openssl >/dev/null || die "needs the openssl command"
start_cluster c 3 raft "$BASE" --tls
D="$DIR/c"
"$SABHA" cluster stop --dir "$D" >/dev/null || die "cluster stop"

IMP=$((BASE + 50))
# Its stdin stays open (a FIFO nobody writes): at EOF s_server would stop.
mkfifo "$DIR/impostor.in"
openssl s_server -accept "127.0.0.1:$IMP" -cert "$D/node3.crt" \
  -key "$D/node3.key" -CAfile "$D/ca.crt" -ign_eof <>"$DIR/impostor.in" \
  >"$DIR/impostor.out" 2>&1 &
IMP_PID=$!
trap 'rc=$?; kill $IMP_PID 2>/dev/null; (exit $rc); cleanup' EXIT

peers="1=127.0.0.1:$((BASE + 200)),2=127.0.0.1:$((BASE + 201)),3=127.0.0.1:$((BASE + 202))"
PIDS=""
for i in 1 2; do
  other=$((3 - i))
  clients="$i=127.0.0.1:$((BASE + i - 1)),$other=127.0.0.1:$IMP,3=127.0.0.1:$((BASE + 2))"
  "$SABHAD" --id $i --peers "$peers" --peer-clients "$clients" \
    --client-port $((BASE + i - 1)) --http-port $((BASE + 100 + i - 1)) \
    --data "$DIR/n$i" --tls --tls-cert-file "$D/node$i.crt" \
    --tls-key-file "$D/node$i.key" --tls-ca-cert-file "$D/ca.crt" \
    >"$DIR/n$i.log" 2>&1 &
  PIDS="$PIDS $!"
done
trap 'rc=$?; kill $IMP_PID $PIDS 2>/dev/null; wait $PIDS 2>/dev/null; (exit $rc); cleanup' EXIT
tcli() { timeout 5 redis-cli --tls --cacert "$D/ca.crt" -p "$@"; }

# The leader answers a write itself; the follower forwards it.
L=""
for t in $(seq 1 100); do
  for i in 1 2; do
    [ "$(tcli $((BASE + i - 1)) SET probe$i x 2>&1)" = OK ] && L=$i
  done
  [ -n "$L" ] && break
  sleep 0.1
done
[ -n "$L" ] || die "no leader among nodes 1 and 2"
F=$((3 - L))
log "node $L leads; writing through follower $F"
tcli $((BASE + F - 1)) SET stolenkey stolenvalue >"$DIR/set.out" 2>&1
sleep 1
if grep -q -e stolenkey -e SABHA.FORWARDED "$DIR/impostor.out"; then
  die "the follower forwarded to a node that is not the leader: $(tr -d '\r' <"$DIR/impostor.out" | tail -5)"
fi
grep -q 'forwarding link: .*certificate refused: it names "sabha-node-3", not "sabha-node-'"$L"'"' \
  "$DIR/n$F.log" || die "node $F did not say why it refused the impostor: $(grep -i forward "$DIR/n$F.log" | tail -3)"
log "node $F refused the impostor's certificate; the impostor got nothing"
for p in $PIDS; do kill -TERM "$p"; done
for p in $PIDS; do wait "$p" || die "sabhad exited $? after SIGTERM"; done
PIDS=""
for i in 1 2; do
  if grep -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$DIR/n$i.log"; then
    die "a sanitizer report in node $i's log"
  fi
done
log "ok"
