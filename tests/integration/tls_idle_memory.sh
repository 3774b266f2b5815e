#!/bin/bash
# A TLS client that read a large reply and then idles must not keep a
# copy of it: without TLS the runtime frees a stream's large buffers once
# they are empty (RT_IDLE_BUFFER_BYTES_MAX), and the ciphertext of a take
# must go the same way once written. 30 TLS clients each GET a 2 MiB value
# and stay connected, reading nothing more; the node's resident memory
# must not grow by anything like their 60 MiB of replies (before, each
# kept its reply's ciphertext buffer for as long as it stayed).
. "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || die "needs python3"
start_cluster c 1 raft "$BASE" --tls
D="$DIR/c"
wait_leader c
port=$(client_port 1 "$BASE")
tcli() { timeout 10 redis-cli --tls --cacert "$D/ca.crt" -p "$@"; }
# In pieces: a log entry takes less than 2 MiB.
head -c $((256 << 10)) /dev/zero | tr '\0' x >"$DIR/piece"
expect OK "$(tcli "$port" -x SET big <"$DIR/piece" 2>&1)"
for i in $(seq 2 8); do
  expect $((i << 18)) "$(tcli "$port" -x APPEND big <"$DIR/piece" 2>&1)"
done
expect $((2 << 20)) "$(tcli "$port" STRLEN big 2>&1)"
pid=$(cat "$D/node1.pid")
rss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$pid/status"; }

hold() {
  python3 -u -c '
import socket, ssl, sys
ca, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ctx = ssl.create_default_context(cafile=ca)
want = len(b"$%d\r\n" % (2 << 20)) + (2 << 20) + 2
held = []
for i in range(n):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)),
                        server_hostname="127.0.0.1")
    s.sendall(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n")
    got = 0
    while got < want:
        b = s.recv(1 << 20)
        if not b:
            sys.exit("closed after %d bytes" % got)
        got += len(b)
    held.append(s)
print("holding", flush=True)
sys.stdin.read()
' "$D/ca.crt" "$port" "$1"
}

# One round first, so that allocator pools are as warm as they get.
mkfifo "$DIR/hold.in"
hold 30 <>"$DIR/hold.in" >"$DIR/hold1.out" 2>&1 &
H=$!
for i in $(seq 1 300); do grep -q holding "$DIR/hold1.out" && break; sleep 0.1; done
grep -q holding "$DIR/hold1.out" || die "the clients did not get their replies: $(cat "$DIR/hold1.out")"
kill $H; wait $H 2>/dev/null
sleep 1
rss0=$(rss)
hold 30 <>"$DIR/hold.in" >"$DIR/hold2.out" 2>&1 &
H=$!
for i in $(seq 1 300); do grep -q holding "$DIR/hold2.out" && break; sleep 0.1; done
grep -q holding "$DIR/hold2.out" || die "the clients did not get their replies: $(cat "$DIR/hold2.out")"
sleep 1
rss1=$(rss)
kill $H; wait $H 2>/dev/null
grew=$(( (rss1 - rss0) / 1024 ))
log "resident memory ${rss0} kB, with 30 idle TLS clients ${rss1} kB (+${grew} MiB)"
[ "$grew" -lt 20 ] || die "30 idle TLS clients hold ${grew} MiB: their replies' ciphertext was kept"
expect PONG "$(tcli "$port" PING 2>&1)"
log "ok"
