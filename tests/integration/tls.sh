#!/bin/bash
# TLS on every port (issue 11). `sabha cluster start --tls` makes a CA and
# the nodes' certificates (keys mode 0600); redis-cli --tls --cacert talks to
# the leader and, through a follower's forwarding link (itself a TLS client
# of the leader's client port), writes and reads; plaintext redis-cli gets no
# PONG; /health answers over HTTPS and plaintext HTTP gets nothing; a
# plaintext stranger at a peer port is refused (reason tls); after the
# leader is SIGKILLed the others elect a new one, and the old leader,
# restarted, re-handshakes with both over TLS; `cluster add` joins a fourth
# node with a certificate of the cluster's CA. Last, sabhad's rules: --tls
# without its files is refused, and TLS stands in for a secret off loopback.
. "$(dirname "$0")/lib.sh"
start_cluster c 3 raft "$BASE" --tls
D="$DIR/c"
ca=$(ls "$D"/*ca*.crt 2>/dev/null | head -1)
[ -n "$ca" ] || die "no CA certificate in $D"
for k in ca node1 node2 node3 client; do
  expect 600 "$(stat -c %a "$D/$k.key")"
done
# The clients' certificate is of the same CA, but fit for a client only:
# whoever holds it cannot answer for a node to redis-cli or curl.
openssl verify -CAfile "$ca" -purpose sslclient "$D/client.crt" >/dev/null ||
  die "client.crt is not a client's certificate"
if openssl verify -CAfile "$ca" -purpose sslserver "$D/client.crt" >/dev/null 2>&1; then
  die "client.crt is fit to serve, so its holder can pose as a node"
fi
openssl verify -CAfile "$ca" -purpose sslserver "$D/node1.crt" >/dev/null ||
  die "node1.crt is not fit to serve"
wait_leader c
L=$(leader_node c)
F=$(follower_node c)
lp=$(client_port "$L" "$BASE")
fp=$(client_port "$F" "$BASE")
tcli() { timeout 10 redis-cli --tls --cacert "$ca" -p "$@"; }

expect PONG "$(tcli "$lp" PING 2>&1)"
expect OK "$(tcli "$fp" SET greeting hello 2>&1)"
expect hello "$(tcli "$lp" GET greeting 2>&1)"
expect hello "$(tcli "$fp" GET greeting 2>&1)"
log "TLS clients served by leader $L and, forwarded, by follower $F"

if timeout 10 redis-cli -p "$lp" PING 2>&1 | grep -q PONG; then
  die "a plaintext client got PONG from a TLS port"
fi
log "plaintext redis-cli refused"

# https_get PORT PATH: the body of a GET over TLS, checked against the CA.
https_get() {
  if command -v curl >/dev/null; then
    timeout 10 curl -s --cacert "$ca" "https://127.0.0.1:$1$2"
  else
    timeout 10 python3 -c 'import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[1])
print(urllib.request.urlopen(sys.argv[2], context=ctx).read().decode(), end="")' \
      "$ca" "https://127.0.0.1:$1$2"
  fi
}
hp=$(http_port "$L" "$BASE")
expect ok "$(https_get "$hp" /health)"
[ -z "$(http_get "$hp" /health)" ] || die "plaintext HTTP answered on a TLS port"
log "HTTPS /health ok; plaintext HTTP gets nothing"

pp=$((BASE + 200 + L - 1))
timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 && printf "not a TLS ClientHello" >&3 && cat <&3 >/dev/null' "$pp" 2>/dev/null
refused=""
for i in $(seq 1 30); do
  refused=$(https_get "$hp" /metrics | sed -n 's/^sabha_handshakes_refused_total{reason="tls"} //p')
  [ "${refused:-0}" -ge 1 ] && break
  sleep 0.1
done
[ "${refused:-0}" -ge 1 ] || die "a plaintext peer was not refused (tls: '$refused')"
log "a plaintext stranger at the peer port refused (reason tls)"

log "killing leader node $L"
"$SABHA" cluster kill leader --dir "$D" >/dev/null || die "cluster kill leader"
for i in $(seq 1 150); do
  NL=$(leader_node c)
  [ -n "$NL" ] && [ "$NL" != "$L" ] && break
  sleep 0.1
done
[ -n "$NL" ] && [ "$NL" != "$L" ] || die "no new leader after killing node $L"
nlp=$(client_port "$NL" "$BASE")
expect hello "$(tcli "$nlp" GET greeting 2>&1)"
expect OK "$(tcli "$nlp" SET after failover 2>&1)"
log "node $NL leads; restarting node $L"
"$SABHA" cluster restart "$L" --dir "$D" >/dev/null || die "restart"
ohp=$(http_port "$L" "$BASE")
for i in $(seq 1 100); do
  https_get "$ohp" /status | grep -q '"peers_connected":2' && break
  sleep 0.1
done
https_get "$ohp" /status | grep -q '"peers_connected":2' ||
  die "restarted node $L did not reconnect to both peers: $(https_get "$ohp" /status)"
for i in $(seq 1 50); do
  [ "$(tcli "$lp" GET after 2>&1)" = failover ] && break
  sleep 0.1
done
expect failover "$(tcli "$lp" GET after 2>&1)"
log "node $L is back, connected to both peers over TLS, and caught up"

# `cluster add` makes node 4 a certificate from the cluster's CA: it joins
# over TLS, and a TLS client reads through it what was written before.
"$SABHA" cluster add --dir "$D" >"$DIR/add.out" 2>&1 || die "cluster add on a TLS cluster: $(cat "$DIR/add.out")"
expect 600 "$(stat -c %a "$D/node4.key")"
expect 4 "$(tcli "$nlp" SABHA.MEMBERS 2>&1 | grep -c role=voter)"
for i in $(seq 1 50); do
  [ "$(tcli $((BASE + 3)) GET greeting 2>&1)" = hello ] && break
  sleep 0.1
done
expect hello "$(tcli $((BASE + 3)) GET greeting 2>&1)"
log "node 4 joined a TLS cluster as a voter"

# sabhad on its own: --tls without files is refused; with them, off
# loopback and without a secret, it starts (mutual TLS authenticates peers).
P=$((BASE + 210))
out=$(timeout 10 "$SABHAD" --id 1 --peers "1=127.0.0.1:$P" --client-port $((BASE + 10)) \
  --http-port $((BASE + 110)) --data "$DIR/solo" --tls 2>&1)
rc=$?
[ $rc -eq 2 ] || die "--tls without files: exit $rc, not 2: $out"
echo "$out" | grep -q tls-cert-file || die "--tls without files: $out"
"$SABHAD" --id 1 --peers "1=0.0.0.0:$P" --bind 0.0.0.0 --client-port $((BASE + 10)) \
  --http-port $((BASE + 110)) --data "$DIR/solo" --tls \
  --tls-cert-file "$D/node1.crt" --tls-key-file "$D/node1.key" \
  --tls-ca-cert-file "$ca" >"$DIR/solo.log" 2>&1 &
PID=$!
for i in $(seq 1 50); do
  [ "$(tcli $((BASE + 10)) PING 2>&1)" = PONG ] && break
  sleep 0.1
done
[ "$(tcli $((BASE + 10)) PING 2>&1)" = PONG ] ||
  { kill $PID; cat "$DIR/solo.log"; die "TLS off loopback without a secret did not start"; }
kill -TERM $PID
wait $PID || die "sabhad exited $? after SIGTERM"
log "ok"
