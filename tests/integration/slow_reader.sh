#!/bin/bash
# Clients that pipeline reads of a large value and never read the replies
# wedge nothing: every node keeps answering PING within a second, the
# leader's memory stays bounded, and the node shuts down on SIGTERM. (The
# node once kept a pointer into a request list across a flush that could
# free it, and spun at full CPU for ever, deaf to SIGTERM.)
. "$(dirname "$0")/lib.sh"
start_cluster c 3 raft "$BASE"
wait_leader c
L=$(leader_node c)
PL=$(client_port "$L" "$BASE")

log "a 900 KB value"
head -c 900000 /dev/zero | tr '\0' x > "$DIR/value"
expect OK "$(timeout 10 redis-cli -p "$PL" -x SET bv < "$DIR/value")"

log "three clients pipeline 600 GETs of it each, then never read"
# Small receive buffers, so that the replies pile up in the node, not in
# the kernel; python3 because bash cannot set SO_RCVBUF.
python3 - "$PL" > "$DIR/readers.out" 2>&1 <<'PY' &
import socket, sys, time
port = int(sys.argv[1])
socks = []
for k in range(3):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    try:
        s.sendall(b"*2\r\n$3\r\nGET\r\n$2\r\nbv\r\n" * 600)
    except BlockingIOError:
        pass
    socks.append(s)
print("sent", flush=True)
time.sleep(30)
PY
READERS=$!
for i in $(seq 1 50); do grep -q sent "$DIR/readers.out" 2>/dev/null && break; sleep 0.1; done

log "every node answers PING within a second, every half second, for 5 s"
for i in $(seq 1 10); do
  sleep 0.5
  for n in 1 2 3; do
    p=$(client_port "$n" "$BASE")
    r=$(timeout 1 redis-cli -p "$p" PING 2>&1) || die "node $n did not answer PING in 1 s (round $i): $r"
    [ "$r" = PONG ] || die "node $n answered $r"
  done
done
rss=$(ps -o rss= -p "$(cat "$DIR/c/node$L.pid")")
log "leader RSS $((rss / 1024)) MiB"
[ "$rss" -lt $((256 * 1024)) ] || die "the leader holds $((rss / 1024)) MiB for clients that do not read"
log "the leader stops on SIGTERM while they still wait"
kill -TERM "$(cat "$DIR/c/node$L.pid")"
for i in $(seq 1 50); do kill -0 "$(cat "$DIR/c/node$L.pid")" 2>/dev/null || break; sleep 0.1; done
kill -0 "$(cat "$DIR/c/node$L.pid")" 2>/dev/null && die "the leader ignored SIGTERM"
kill "$READERS" 2>/dev/null
log "ok"
