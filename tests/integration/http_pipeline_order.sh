#!/bin/bash
# Pipelined HTTP requests are served together, and answered in order.
#
# A client that pipelines many requests over one connection gets them
# started together, up to 128 in a loop turn, not one a turn:
# sabha_http_kv_batches_total counts the groups, so 1000 pipelined GETs at
# the leader take at most a few dozen (they took 1000, and 57 ms, against
# 3 ms now).
# And however they are served, the responses come in the order of the
# requests: a mix of writes, reads, deletes, ranges, requests answered
# without the runtime (400, 404, 405; a HEAD's 405 has no body) and an
# operator endpoint, pipelined at the leader and at a follower (which
# forwards to the leader), must come back exactly as a client that sent
# them one by one would see them; and one that asks to close ends the
# pipeline there.
# Ports: a 3-node cluster at BASE (BASE.., +100.., +200..: 18750-18999).
. "$(dirname "$0")/lib.sh"
start_cluster c 3 raft "$BASE"
wait_leader c
L=$(leader_node c)
F=$(follower_node c)
hl=$(http_port "$L" "$BASE")
hf=$(http_port "$F" "$BASE")
rcli "$(client_port "$L" "$BASE")" SET pk v >/dev/null

# gets PORT N: N pipelined GETs of pk; prints "responses R" (R answered 200).
gets() {
  timeout 30 python3 - "$@" <<'PY'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(b"GET /v1/kv/pk HTTP/1.1\r\nHost: x\r\n\r\n" * n)
data = b""
while data.count(b"HTTP/1.1 ") < n:
    d = s.recv(1 << 20)
    if not d:
        break
    data += d
print("responses %d" % data.count(b"HTTP/1.1 200"))
PY
}
batches() { metric "$hl" sabha_http_kv_batches_total; }
requests() { metric "$hl" sabha_http_kv_requests_total; }
b0=$(batches); r0=$(requests)
expect "responses 1000" "$(gets "$hl" 1000)"
b=$(( $(batches) - ${b0:-0} )); r=$(( $(requests) - ${r0:-0} ))
log "1000 pipelined GETs at leader $L: $r requests started in $b batches"
expect 1000 "$r"
[ "$b" -ge 8 ] || die "$b batches: more than 128 requests started in one turn"
[ "$b" -le 40 ] || die "$b batches for 1000 pipelined GETs: served one a turn?"

# mixed PORT ROUNDS: ROUNDS rounds of requests, pipelined in one write, then
# GET /health; checks every response against what it must be, in order,
# and prints "in order R" (R responses) or what came instead.
mixed() {
  timeout 60 python3 - "$@" <<'PY'
import socket, sys
port, rounds, tag = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
reqs, want, heads = [], [], []
def req(line, body=b"", status=0, has=None):
    head = line + b" HTTP/1.1\r\nHost: x\r\n"
    if body:
        head += b"Content-Length: %d\r\n" % len(body)
    reqs.append(head + b"\r\n" + body)
    want.append((status, has))
    heads.append(line.startswith(b"HEAD "))
for i in range(rounds):
    k = b"%s%d" % (tag.encode(), i)
    v = b"value-%d-" % i + b"x" * (i * 37 % 300)
    req(b"PUT /v1/kv/" + k, v, 204)
    req(b"GET /v1/kv/" + k, b"", 200, v)
    req(b"GET /v1/kv/nokey" + k, b"", 404, b"no such key")
    req(b"GET /v1/kv/" + k + b"%zz", b"", 400, b"percent-encoding")
    req(b"GET /v1/nothing-here", b"", 404, b"not found")
    req(b"DELETE /v1/kv/", b"", 405, b"method not allowed")
    req(b"HEAD /v1/kv/" + k, b"", 405, b"")
    req(b"GET /v1/kv/?prefix=" + k, b"", 200, v)
    req(b"DELETE /v1/kv/" + k, b"", 204)
    req(b"GET /v1/kv/" + k, b"", 404, b"no such key")
req(b"GET /health", b"", 200, b"ok")
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(b"".join(reqs))
buf = b""
def fill():
    global buf
    d = s.recv(1 << 20)
    if not d:
        raise EOFError
    buf += d
got = []
try:
    while len(got) < len(want):
        while b"\r\n\r\n" not in buf:
            fill()
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        n = 0
        for l in lines[1:]:
            if l.lower().startswith(b"content-length:"):
                n = int(l.split(b":")[1])
        if heads[len(got)]:
            n = 0 # a HEAD's response has no body, whatever its length says
        while len(buf) < n:
            fill()
        got.append((status, buf[:n]))
        buf = buf[n:]
except (EOFError, OSError):
    pass
for j, (w, g) in enumerate(zip(want, got)):
    if g[0] != w[0] or (w[1] is not None and w[1] not in g[1]):
        print("response %d: want %d with %r, got %d %r" % (j, w[0], w[1], g[0], g[1][:80]))
        sys.exit(0)
print("in order %d" % len(got) if len(got) == len(want) else
      "only %d of %d responses" % (len(got), len(want)))
PY
}
log "mixed requests pipelined at leader $L"
expect "in order $((40 * 10 + 1))" "$(mixed "$hl" 40 lead)"
log "mixed requests pipelined at follower $F (forwarded)"
expect "in order $((40 * 10 + 1))" "$(mixed "$hf" 40 fol)"

# A request that asks to close, pipelined: those before it are answered
# without "Connection: close", it with, and none after it.
log "Connection: close in the middle of a pipeline"
out=$(timeout 20 python3 - "$hl" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
get = b"GET /v1/kv/pk HTTP/1.1\r\nHost: x\r\n"
bad = b"GET /v1/kv/pk%zz HTTP/1.1\r\nHost: x\r\n"
s.sendall(get + b"\r\n" + bad + b"\r\n" + get + b"Connection: close\r\n\r\n" +
          get + b"\r\n")
data = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    data += d
heads = [h.split(b"\r\n\r\n")[0] for h in data.split(b"HTTP/1.1 ")[1:]]
print(" ".join(h[:3].decode() + ("/close" if b"Connection: close" in h else "")
               for h in heads))
PY
)
expect "200 400 200/close" "$out"
log "ok"
