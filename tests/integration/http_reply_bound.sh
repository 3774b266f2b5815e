#!/bin/bash
# A reply larger than the HTTP key-value API takes in (64 MiB of RESP),
# possible once client-output-buffer-limit is raised or off: the request
# is answered 500 and its connection closed, with a WARN line and
# sabha_http_replies_too_big_total. (The reply was dropped into a buffer
# that refused it, and the request waited for ever: no timeout ends a
# request that is with the node.) Then the node serves the next request as
# before; and a connection whose responses not yet written would pass
# 32 MiB is closed with a WARN line and a metric. Uses BASE.
. "$(dirname "$0")/lib.sh"
start_cluster b 1 raft "$BASE" --set 'client-output-buffer-limit=normal 0 0 0'
wait_leader b
HP=$(http_port 1 "$BASE")
U="http://127.0.0.1:$HP"
log "70 values of 1,000,000 bytes: a range over them is 70 MB of RESP"
head -c 1000000 /dev/zero | tr '\0' r >"$DIR/v1m"
for i in $(seq 10 79); do
  curl -sf -o /dev/null -X PUT --data-binary @"$DIR/v1m" "$U/v1/kv/r$i" || die "PUT r$i"
done
log "the range: 500, at once"
expect 500 "$(curl -s -o "$DIR/range.out" -w '%{http_code}' --max-time 20 "$U/v1/kv/?prefix=r&limit=100")"
expect "the reply is larger than the HTTP API takes (64 MiB); use a smaller limit, or RESP" "$(cat "$DIR/range.out")"
expect 1 "$(metric "$HP" sabha_http_replies_too_big_total)"
grep -q "a reply over 67108864 bytes, more than the HTTP API takes" "$DIR/b/node1.log" || die "no WARN line"
# A client can ask again and again: every time is counted, but the log
# has one line per 10 s (SRV_HTTP_LOG_MS), not one per request.
for i in 1 2; do
  expect 500 "$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 "$U/v1/kv/?prefix=r&limit=100")"
done
expect 3 "$(metric "$HP" sabha_http_replies_too_big_total)"
expect 1 "$(grep -c "more than the HTTP API takes" "$DIR/b/node1.log")"
log "a smaller range and a GET still work"
expect 200 "$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 "$U/v1/kv/?prefix=r&limit=10")"
expect 1000000 "$(curl -sf --max-time 5 "$U/v1/kv/r42" | wc -c)"

# A connection holds at most 32 MiB of responses not yet written. Three
# pipelined ranges whose client reads nothing: 4.0 MB, more than Linux's
# socket takes in (tcp_wmem's 4 MiB holds about 3.8 MB), so its write is
# still going; 150 KB, which waits (4.15 MB in all, under the 4 MiB
# pause, so the third starts); and 33.48 MB of JSON, under the 32 MiB a
# range's JSON may be, but not with the 150 KB before it. The connection
# is closed, as before, but now with a WARN line and
# sabha_http_output_overflows_total (it was closed without a word).
log "three pipelined ranges past the 32 MiB of responses a connection holds"
head -c 150000 /dev/zero | tr '\0' q >"$DIR/v150k"
curl -sf -o /dev/null -X PUT --data-binary @"$DIR/v150k" "$U/v1/kv/q1" || die "PUT q1"
head -c 480000 /dev/zero | tr '\0' r >"$DIR/v480k"
curl -sf -o /dev/null -X PUT --data-binary @"$DIR/v480k" "$U/v1/kv/r42a" || die "PUT r42a"
expect 0 "$(metric "$HP" sabha_http_output_overflows_total)"
timeout 40 python3 - "$HP" <<'PY' || die "the pipelined ranges"
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"".join(b"GET /v1/kv/?prefix=%s&limit=%d HTTP/1.1\r\nHost: x\r\n\r\n"
                   % q for q in ((b"r", 4), (b"q", 1), (b"r", 34))))
time.sleep(3)  # reads nothing meanwhile
s.settimeout(10)
got = 0
try:
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        got += len(d)
except OSError:
    pass
print("read %d bytes before the close" % got)
assert got < 37000000, "every response came: the kernel took the first whole?"
PY
expect 1 "$(metric "$HP" sabha_http_output_overflows_total)"
grep -q "WARN http: a response would pass the 32 MiB a connection holds" \
  "$DIR/b/node1.log" || die "no WARN line for the overflow"
expect 1000000 "$(curl -sf --max-time 5 "$U/v1/kv/r42" | wc -c)"
log "ok"
