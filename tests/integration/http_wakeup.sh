#!/bin/bash
# An HTTP reply the runtime writes in the loop's check phase goes out in
# that turn. A read is answered there (its leadership confirmed, or at once
# on a node alone), and the check phase stopped the loop's idle handle after
# the runtime ran, undoing the kick that reply made: it then waited for the
# loop's next wake-up, a timer, up to tick-ms. With the default 5 ms a GET
# took 2 ms on an idle node against 0.1 over RESP; with tick-ms 1000 here,
# 50 GETs one after another took about 10 s. They must all be answered
# within 3 s (they take a few ms). Uses BASE.
. "$(dirname "$0")/lib.sh"
start_cluster w 1 raft "$BASE" --set tick-ms=1000
wait_leader w 30
port=$(http_port 1 "$BASE")
[ "$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data v \
  "http://127.0.0.1:$port/v1/kv/k")" = 204 ] || die "PUT failed"

got=$(timeout 30 python3 - "$port" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
t0 = time.monotonic()
answered = 0
for _ in range(50):
    s.sendall(b"GET /v1/kv/k HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while not data.endswith(b"\r\n\r\nv"):
        d = s.recv(4096)
        if not d:
            break
        data += d
    if data.startswith(b"HTTP/1.1 200"):
        answered += 1
print("answered %d in %.1f s" % (answered, time.monotonic() - t0))
PY
)
log "$got"
set -- $got
[ "$2" = 50 ] || die "not every GET was answered: $got"
awk -v t="$4" 'BEGIN { exit !(t < 3) }' ||
  die "GETs waited for the loop's timer: $got"
log "ok"
