#!/bin/bash
# Pipelined requests on the HTTP key-value API (docs/api.md, "HTTP"): a
# client that writes many requests at once, more than the connection's
# 8 KiB request buffer holds, gets every response, in order, over plain
# HTTP and over HTTPS. (A pipeline that filled the buffer while no request
# was with the node made libuv read into a buffer of no room, and the
# connection was reset with nothing answered; over TLS the requests left
# in the session once the buffer had room again were never read, and the
# connection waited for its 5 s head timeout.) Uses BASE and BASE + 250.
. "$(dirname "$0")/lib.sh"
start_cluster p 1 raft "$BASE"
start_cluster t 1 raft $((BASE + 250)) --tls
wait_leader p
wait_leader t
rcli "$(client_port 1 "$BASE")" SET pk v >/dev/null

# pipeline PORT N [CA]: N GETs in one write; prints "responses R codes C".
pipeline() {
  timeout 20 python3 - "$@" <<'PY'
import socket, ssl, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port), timeout=10)
if len(sys.argv) > 3:
    ctx = ssl.create_default_context(cafile=sys.argv[3])
    ctx.check_hostname = False
    s = ctx.wrap_socket(s)
s.settimeout(4)
s.sendall(b"GET /v1/kv/pk HTTP/1.1\r\nHost: x\r\n\r\n" * n)
data = b""
try:
    while data.count(b"HTTP/1.1 ") < n:
        d = s.recv(65536)
        if not d:
            break
        data += d
except OSError:
    pass
codes = sorted(set(l.split(b" ")[1].decode() for l in data.split(b"\r\n")
                   if l.startswith(b"HTTP/1.1 ")))
print("responses %d codes %s" % (data.count(b"HTTP/1.1 "), ",".join(codes)))
PY
}

for n in 100 1000; do
  log "$n pipelined GETs over HTTP"
  expect "responses $n codes 200" "$(pipeline "$(http_port 1 "$BASE")" "$n")"
done
rcli "$(client_port 1 $((BASE + 250)))" --tls --cacert "$DIR/t/ca.crt" SET pk v >/dev/null
for n in 100 1000; do
  log "$n pipelined GETs over HTTPS"
  expect "responses $n codes 200" \
    "$(pipeline "$(http_port 1 $((BASE + 250)))" "$n" "$DIR/t/ca.crt")"
done
log "ok"
