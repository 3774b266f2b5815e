#!/bin/bash
# With every HTTP slot taken, a new connection pushes out an idle one,
# else one still sending its head, else one whose body is still coming
# (the oldest of each, answered 408), never one whose response is being
# written or made: with only such, the new one is closed and counted
# (sabha_http_connections_dropped_total{reason="full"}). (The oldest
# connection without a request at the node was pushed out, even in the
# middle of writing a 6 MB response: its client got it cut short. Then,
# for a while, connections whose bodies were coming could not be pushed
# out, so that 256 of them, each stalled for the 5 s a body may take,
# kept /health from answering.)
# Uses BASE.
. "$(dirname "$0")/lib.sh"
start_cluster s 1 raft "$BASE"
wait_leader s
HP=$(http_port 1 "$BASE")
HMAX=$(metric "$HP" sabha_http_connections_max)
head -c 1000000 /dev/zero | tr '\0' b >"$DIR/v1m"
for i in 1 2 3 4 5 6; do # a log entry is at most 1 MiB: APPEND grows it
  rcli "$(client_port 1 "$BASE")" -x APPEND big <"$DIR/v1m" >/dev/null || die "APPEND"
done
expect 6000000 "$(rcli "$(client_port 1 "$BASE")" STRLEN big)"

log "a 6 MB response being written, $((HMAX - 1)) idle connections, and one more"
timeout 60 python3 - "$HP" "$HMAX" >"$DIR/idle.out" 2>&1 <<'PY'
import socket, sys, time
port, hmax = int(sys.argv[1]), int(sys.argv[2])
def conn(rcvbuf=0):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    return s
def read_response(s):
    """Status and body of one response, or what came before the close."""
    data = b""
    while b"\r\n\r\n" not in data:
        d = s.recv(65536)
        if not d:
            return "closed after %d bytes" % len(data), b""
        data += d
    head, body = data.split(b"\r\n\r\n", 1)
    n = int([l.split(b":")[1] for l in head.split(b"\r\n")
             if l.lower().startswith(b"content-length:")][0])
    while len(body) < n:
        d = s.recv(1 << 20)
        if not d:
            break
        body += d
    return head.split(b" ")[1].decode(), body
big = conn(16384)
big.sendall(b"GET /v1/kv/big HTTP/1.1\r\nHost: x\r\n\r\n")
time.sleep(0.5)  # its response is being written: the client reads nothing
idle = [conn() for _ in range(hmax - 1)]
time.sleep(0.5)
new = conn()
new.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
print("newcomer", read_response(new)[0])
st, body = read_response(big)
print("big", st, len(body))
PY
cat "$DIR/idle.out"
expect 200 "$(sed -n 's/^newcomer //p' "$DIR/idle.out")"
expect "200 6000000" "$(sed -n 's/^big //p' "$DIR/idle.out")"
expect 1 "$(metric "$HP" 'sabha_http_connections_dropped_total\{reason="evicted"\}')"

log "$HMAX PUTs whose bodies are coming, and one more"
timeout 60 python3 - "$HP" "$HMAX" >"$DIR/busy.out" 2>&1 <<'PY'
import socket, sys, time
port, hmax = int(sys.argv[1]), int(sys.argv[2])
puts = []
for i in range(hmax):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"PUT /v1/kv/p%d HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab"
              % i)
    puts.append(s)
time.sleep(0.5)
new = socket.create_connection(("127.0.0.1", port), timeout=10)
try:
    new.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    got = new.recv(100)
except OSError:
    got = b""
print("newcomer", got.split(b"\r\n")[0].decode() or "closed")
codes = {}
for s in puts:
    try:
        s.sendall(b"cd")
        st = s.recv(100).split(b"\r\n")[0].decode() or "closed"
    except OSError as e:
        st = "error"
    codes[st] = codes.get(st, 0) + 1
print("puts", " ".join("%s=%d" % kv for kv in sorted(codes.items())))
PY
cat "$DIR/busy.out"
expect "HTTP/1.1 200 OK" "$(sed -n 's/^newcomer //p' "$DIR/busy.out")"
sed -n 's/^puts //p' "$DIR/busy.out" | grep -q "HTTP/1.1 204 No Content=$((HMAX - 1))" ||
  die "all but the oldest PUT should be answered 204"
expect 2 "$(metric "$HP" 'sabha_http_connections_dropped_total\{reason="evicted"\}')"

log "$HMAX watches being answered, and one more: the new one is refused"
timeout 60 python3 - "$HP" "$HMAX" >"$DIR/full.out" 2>&1 <<'PY'
import socket, sys, time
port, hmax = int(sys.argv[1]), int(sys.argv[2])
watches = []
for i in range(hmax):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /v1/watch?prefix=w%d: HTTP/1.1\r\nHost: x\r\n\r\n" % i)
    watches.append(s)
for s in watches:  # each has its stream's head: it is being answered
    s.recv(100)
new = socket.create_connection(("127.0.0.1", port), timeout=10)
try:
    new.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    got = new.recv(100)
except OSError:
    got = b""
print("newcomer", got.split(b"\r\n")[0].decode() or "closed")
PY
cat "$DIR/full.out"
expect closed "$(sed -n 's/^newcomer //p' "$DIR/full.out")"
expect 1 "$(metric "$HP" 'sabha_http_connections_dropped_total\{reason="full"\}')"
log "ok"
