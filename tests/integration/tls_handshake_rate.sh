#!/bin/bash
# Every TLS connection a node accepts costs it a handshake's asymmetric
# crypto before it knows who is there. tls-handshakes-per-second (here 20)
# bounds that work: a flood of handshakes at node 1's client and HTTP
# ports gets about the budget through (20 at once, then 20 a second), the
# rest are closed at once, counted in
# sabha_tls_handshakes_limited_total{port="client"} and logged (at most
# once per 10 s). The peer port has a budget of its own, so node 3,
# restarted in the middle of the flood, joins node 1 and 2 again over its
# peer links while the flood goes on. Once the flood ends, an ordinary
# client gets in. (Before the setting existed every handshake of the flood
# was served.) Then a flood at node 2's peer port is held to its budget
# too, and node 2 keeps its peer links. Ports BASE..BASE+2, +100.., +200..: inside 18750-18999.
. "$(dirname "$0")/lib.sh"
RATE=20
start_cluster c 3 raft "$BASE" --tls --set "tls-handshakes-per-second=$RATE"
D="$DIR/c"
wait_leader c
tcli() { timeout 10 redis-cli --tls --cacert "$D/ca.crt" -p "$@"; }
https_get() {
  timeout 10 python3 -c 'import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[1])
print(urllib.request.urlopen(sys.argv[2], context=ctx).read().decode(), end="")' \
    "$D/ca.crt" "https://127.0.0.1:$1$2"
}
cp1=$(client_port 1 "$BASE")
hp1=$(http_port 1 "$BASE")
hp3=$(http_port 3 "$BASE")
expect PONG "$(tcli "$cp1" PING 2>&1)"
"$SABHA" cluster kill 3 --dir "$D" >/dev/null || die "cluster kill 3"

# flood SECONDS MAX PORT...: handshakes one after another, round the ports,
# for at most SECONDS and MAX handshakes; prints "ok O refused R seconds S".
flood() {
  timeout 30 python3 - "$D/ca.crt" "$@" <<'PY'
import socket, ssl, sys, time
ca, seconds, most = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
ports = [int(p) for p in sys.argv[4:]]
ctx = ssl.create_default_context(cafile=ca)
ok = refused = 0
t0 = time.monotonic()
for i in range(most):
    if time.monotonic() - t0 >= seconds:
        break
    try:
        s = socket.create_connection(("127.0.0.1", ports[i % len(ports)]),
                                     timeout=3)
    except OSError:
        refused += 1
        continue
    try:
        t = ctx.wrap_socket(s, server_hostname="localhost")
        ok += 1
        t.close()
    except (OSError, ssl.SSLError):
        refused += 1
        s.close()
print("ok %d refused %d seconds %.2f" % (ok, refused, time.monotonic() - t0))
PY
}

log "a flood of TLS handshakes at node 1's client and HTTP ports"
flood 6 20000 "$cp1" "$hp1" >"$DIR/flood.out" &
FLOOD=$!
sleep 1
"$SABHA" cluster restart 3 --dir "$D" >/dev/null || die "cluster restart 3"
joined=""
for i in $(seq 1 40); do
  https_get "$hp3" /status 2>/dev/null | grep -q '"peers_connected":2' && { joined=yes; break; }
  sleep 0.1
done
kill -0 $FLOOD 2>/dev/null || die "the flood ended before node 3 could be checked"
[ -n "$joined" ] || die "node 3 did not reach both peers during the flood: $(https_get "$hp3" /status)"
log "node 3 restarted and reached both peers while the flood went on"
wait $FLOOD || die "the flood failed"
read -r _ ok _ refused _ secs <"$DIR/flood.out"
log "flood: $ok handshakes served, $refused closed, in ${secs}s"
allowed=$(python3 -c "import sys; print(int($RATE + $RATE * float(sys.argv[1])) + 5)" "$secs")
[ "$ok" -le "$allowed" ] || die "$ok handshakes served in ${secs}s, more than $allowed"
[ "$refused" -ge 100 ] || die "only $refused handshakes closed: was the flood a flood?"

sleep 1.2 # the bucket refills
expect PONG "$(tcli "$cp1" PING 2>&1)"
limited=$(https_get "$hp1" /metrics | sed -n 's/^sabha_tls_handshakes_limited_total{port="client"} //p')
[ "${limited:-0}" -ge 1 ] || die "sabha_tls_handshakes_limited_total{port=\"client\"} is '$limited'"
limited_http=$(https_get "$hp1" /metrics | sed -n 's/^sabha_tls_handshakes_limited_total{port="http"} //p')
[ "${limited_http:-0}" -ge 1 ] || die "sabha_tls_handshakes_limited_total{port=\"http\"} is '$limited_http'"
lines=$(grep -c "tls-handshakes-per-second" "$D/node1.log")
[ "$lines" -ge 1 ] || die "no log line names tls-handshakes-per-second"
[ "$lines" -le 2 ] || die "$lines log lines for one flood: not rate limited"
log "after the flood an ordinary client gets in; counted $limited + $limited_http, logged $lines time(s)"

# The peer port's own budget: a flood there is closed unread too, and the
# links node 2 has stay up.
hp2=$(http_port 2 "$BASE")
flood 2 20000 $((BASE + 201)) >"$DIR/flood2.out" || die "the peer-port flood failed"
read -r _ ok _ refused _ secs <"$DIR/flood2.out"
log "peer-port flood: $ok handshakes served, $refused closed, in ${secs}s"
limited=$(https_get "$hp2" /metrics | sed -n 's/^sabha_tls_handshakes_limited_total{port="peer"} //p')
[ "${limited:-0}" -ge 50 ] || die "sabha_tls_handshakes_limited_total{port=\"peer\"} is '$limited'"
https_get "$hp2" /status | grep -q '"peers_connected":2' ||
  die "node 2 lost a peer link to the flood: $(https_get "$hp2" /status)"
grep -q "peer port: .*over tls-handshakes-per-second" "$D/node2.log" ||
  die "no log line for the peer port's flood"
log "ok"
