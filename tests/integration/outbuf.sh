#!/bin/bash
# What clients that do not read their replies cost the leader stays
# bounded. Three clients pipeline 600 reads of a 900 KB value each and
# never read: every node keeps answering PING, and they hold a few MiB
# each (back-pressure). Then one MGET asks for 280 copies of it (252 MB)
# and never reads: it is closed at the hard output limit (64 MiB) instead
# of being built, and the leader's peak RSS stays under 256 MiB. (One
# client once took a leader from 18 to 287 MB.)
. "$(dirname "$0")/lib.sh"
start_cluster c 3 raft "$BASE"
wait_leader c
L=$(leader_node c)
PL=$(client_port "$L" "$BASE")
HL=$(http_port "$L" "$BASE")
PID=$(cat "$DIR/c/node$L.pid")

log "a 900 KB value"
head -c 900000 /dev/zero | tr '\0' x > "$DIR/value"
expect OK "$(timeout 10 redis-cli -p "$PL" -x SET bv < "$DIR/value")"

log "three clients pipeline 600 GETs of it, then one an MGET of 280 copies; none reads"
python3 - "$PL" > "$DIR/readers.out" 2>&1 <<'PY' &
import socket, sys, time
port = int(sys.argv[1])
socks = []
def deaf(cmd):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    try:
        s.sendall(cmd)
    except BlockingIOError:
        pass
    socks.append(s)
for k in range(3):
    deaf(b"*2\r\n$3\r\nGET\r\n$2\r\nbv\r\n" * 600)
print("sent", flush=True)
time.sleep(3)
deaf(b"*281\r\n$4\r\nMGET\r\n" + b"$2\r\nbv\r\n" * 280)
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
for i in $(seq 1 50); do
  [ "$(metric "$HL" sabha_client_output_buffer_disconnects_total)" -ge 1 ] && break; sleep 0.1
done
[ "$(metric "$HL" sabha_client_output_buffer_disconnects_total)" -ge 1 ] || die "the MGET client was not closed"
grep -q "client-output-buffer-limit" "$DIR/c/node$L.log" || die "no log line for the closed client"
rss=$(awk '/^VmRSS/ {print $2}' /proc/$PID/status)
hwm=$(awk '/^VmHWM/ {print $2}' /proc/$PID/status)
log "leader RSS $((rss / 1024)) MiB, peak $((hwm / 1024)) MiB"
[ "$hwm" -lt $((256 * 1024)) ] || die "the leader reached $((hwm / 1024)) MiB for clients that do not read"
out=$(rcli "$PL" INFO clients | tr -d '\r' | sed -n 's/^client_recent_max_output_buffer://p')
[ "$out" -ge $((4 << 20)) ] && [ "$out" -le $((64 << 20)) ] || die "client_recent_max_output_buffer $out"
kill "$READERS" 2>/dev/null
log "ok"
