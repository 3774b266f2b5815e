#!/bin/bash
# Pipelined requests on the HTTP key-value API (docs/api.md, "HTTP"): a
# client that writes many requests at once, more than the connection's
# 8 KiB request buffer holds, gets every response, in order, over plain
# HTTP and over HTTPS. (A pipeline that filled the buffer while no request
# was with the node made libuv read into a buffer of no room, and the
# connection was reset with nothing answered; over TLS the requests left
# in the session once the buffer had room again were never read, and the
# connection waited for its 5 s head timeout.) Then a reader that starts
# late on large responses, a PUT that expects "100 Continue", and a
# request whose reply passes client-output-buffer-limit (1 MiB here),
# below. Uses BASE and BASE + 250.
. "$(dirname "$0")/lib.sh"
start_cluster p 1 raft "$BASE" --set 'client-output-buffer-limit=normal 1048576 0 0'
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
# late_reader PORT N PID [CA]: PUTs a 512 KiB value, pipelines N GETs of
# it, reads nothing for 6 s, then reads the responses; prints "responses R
# bytes B 408 X" (R GETs answered, B bytes of their bodies, X 408
# responses) and "grew K": how many KiB node PID's peak RSS grew meanwhile.
late_reader() {
  timeout 60 python3 - "$@" <<'PY'
import socket, ssl, sys, time
port, n, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def peak_kib():
    for line in open("/proc/%s/status" % pid):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
s.connect(("127.0.0.1", port))
if len(sys.argv) > 4:
    ctx = ssl.create_default_context(cafile=sys.argv[4])
    ctx.check_hostname = False
    s = ctx.wrap_socket(s)
s.settimeout(15)
val = b"v" * (512 << 10)
s.sendall(b"PUT /v1/kv/big HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
          % len(val) + val)
assert s.recv(1000).startswith(b"HTTP/1.1 204"), "PUT failed"
peak = peak_kib()
s.sendall(b"GET /v1/kv/big HTTP/1.1\r\nHost: x\r\n\r\n" * n)
time.sleep(6)
chunks, body = [], 0
try:
    while body < n * len(val):
        d = s.recv(1 << 20)
        if not d:
            break
        chunks.append(d)
        body += d.count(b"v")
except OSError:
    pass
data = b"".join(chunks)
print("responses %d bytes %d 408 %d" % (data.count(b"HTTP/1.1 200 OK\r\n"),
                                         body, data.count(b"HTTP/1.1 408")))
print("grew %d" % (peak_kib() - peak))
PY
}

# A reader that takes longer than the 5 s idle timeout of a kept-alive
# connection to start on its responses, more than the sockets' buffers
# hold, is not cut off in their middle: the idle time starts once the last
# response is out, and a write has 10 s to be read.
pid=$(cat "$DIR/p/node1.pid")
log "24 GETs of 512 KiB, read after 6 s"
out=$(late_reader "$(http_port 1 "$BASE")" 24 "$pid")
expect "responses 24 bytes $((24 * 512 * 1024)) 408 0" "$(echo "$out" | head -1)"
# Nor does a reader of more than the node would hold for it (50 MiB) lose
# any, or make the node hold them all: its next request waits while 4 MiB
# of responses are unread (it held up to 32 MiB, then closed the
# connection; over TLS, whatever the session took, without bound).
# (Under the sanitizers freed memory waits in ASan's quarantine, so the
# peak says nothing there.)
case "$SABHAD" in *-asan) grew_max="" ;; *) grew_max=24576 ;; esac
log "100 GETs of 512 KiB, read after 6 s, over HTTP and HTTPS"
out=$(late_reader "$(http_port 1 "$BASE")" 100 "$pid")
expect "responses 100 bytes $((100 * 512 * 1024)) 408 0" "$(echo "$out" | head -1)"
grew=$(echo "$out" | sed -n 's/^grew //p')
[ -z "$grew_max" ] || [ "$grew" -lt "$grew_max" ] ||
  die "the node grew by $grew KiB for one reader"
out=$(late_reader "$(http_port 1 $((BASE + 250)))" 100 "$(cat "$DIR/t/node1.pid")" "$DIR/t/ca.crt")
expect "responses 100 bytes $((100 * 512 * 1024)) 408 0" "$(echo "$out" | head -1)"
grew=$(echo "$out" | sed -n 's/^grew //p')
[ -z "$grew_max" ] || [ "$grew" -lt "$grew_max" ] ||
  die "the node grew by $grew KiB for one HTTPS reader"

# A client that sends "Expect: 100-continue" (as `curl -T` does) waits
# for "100 Continue" before its body: it gets it, then the PUT's answer.
# (The node said nothing, and such a client waited a second before each
# body.)
log "a PUT with Expect: 100-continue"
out=$(timeout 20 python3 - "$(http_port 1 "$BASE")" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"PUT /v1/kv/e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
          b"Expect: 100-continue\r\n\r\n")
s.settimeout(3)
try:
    first = s.recv(100)
except OSError:
    first = b"nothing"
s.sendall(b"hello")
s.settimeout(10)
print(first.split(b"\r\n")[0].decode(), "/", s.recv(100).split(b"\r\n")[0].decode())
PY
)
expect "HTTP/1.1 100 Continue / HTTP/1.1 204 No Content" "$out"
expect hello "$(curl -sf "http://127.0.0.1:$(http_port 1 "$BASE")/v1/kv/e")"

# A request whose reply the node refuses to build (past
# client-output-buffer-limit: here a range of three 512 KiB values, over
# 1 MiB) is answered and its connection closed, not left waiting for ever
# with its HTTP slot taken.
U="http://127.0.0.1:$(http_port 1 "$BASE")"
head -c 524288 /dev/zero | tr '\0' v >"$DIR/v512k"
for k in big2 big3; do
  curl -sf -X PUT --data-binary @"$DIR/v512k" "$U/v1/kv/$k" || die "PUT $k"
done
log "a range past client-output-buffer-limit"
expect 500 "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$U/v1/kv/?prefix=big")"
# Only the connection asking for /metrics is left.
expect 1 "$(metric "$(http_port 1 "$BASE")" sabha_http_connections)"
log "ok"
