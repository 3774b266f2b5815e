#!/bin/bash
# Idle connections and half-sent HTTP requests do not stop a node from
# serving: with 1,100 idle client connections held to the leader and every
# HTTP slot taken by a request that never finishes its head, a write through a follower,
# a read at the leader, /health and /metrics all work, at once and 12 s
# later. (The leader once had 1,024 client slots, shared with the
# followers' forwarding links, and 64 HTTP slots with no timeout: both
# filled, and writes through every follower and /health failed.) The
# half-sent requests are answered 408, and INFO and /metrics report each
# limit.
. "$(dirname "$0")/lib.sh"
start_cluster c 3 raft "$BASE"
wait_leader c
L=$(leader_node c); F=$(follower_node c)
PL=$(client_port "$L" "$BASE"); PF=$(client_port "$F" "$BASE")
HL=$(http_port "$L" "$BASE")

expect 300 "$(rcli "$PL" CONFIG GET timeout | tail -1)"
expect 10000 "$(rcli "$PL" CONFIG GET maxclients | tail -1)"
expect "normal 67108864 16777216 60" "$(rcli "$PL" CONFIG GET client-output-buffer-limit | tail -1)"

HMAX=$(metric "$HL" sabha_http_connections_max)
log "1100 idle connections and $HMAX half-sent HTTP requests to the leader"
python3 - "$PL" "$PF" "$HL" "$HMAX" > "$DIR/probe.out" 2>&1 <<'PY'
import resource, socket, subprocess, sys, time, urllib.request
lp, fp, hp, hmax = map(int, sys.argv[1:5])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
idle = [socket.create_connection(("127.0.0.1", lp), timeout=2) for i in range(1100)]
slow = []
for i in range(hmax):
    s = socket.create_connection(("127.0.0.1", hp), timeout=2)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    slow.append(s)
bad = []
def serves(when):
    r = subprocess.run(["redis-cli", "-p", str(fp), "SET", "k-" + when, "1"],
                       capture_output=True, text=True, timeout=10)
    if r.stdout.strip() != "OK":
        bad.append("%s: write via follower: %r" % (when, r.stdout.strip() or r.stderr.strip()))
    r = subprocess.run(["redis-cli", "-p", str(lp), "GET", "k-" + when],
                       capture_output=True, text=True, timeout=10)
    if r.stdout.strip() != "1":
        bad.append("%s: read at leader: %r" % (when, r.stdout.strip()))
    for path in ("/health", "/metrics"):
        try:
            st = urllib.request.urlopen("http://127.0.0.1:%d%s" % (hp, path), timeout=3).status
            if st != 200:
                bad.append("%s: %s status %d" % (when, path, st))
        except Exception as e:
            bad.append("%s: %s: %s" % (when, path, e))
serves("at-once")
time.sleep(12)
serves("after-12s")
timed_out = 0
for s in slow:
    s.settimeout(0.5)
    try:
        timed_out += s.recv(100).startswith(b"HTTP/1.1 408")
    except OSError:
        pass
print("408s", timed_out)
print("FAIL " + "; ".join(bad) if bad else "ok", flush=True)
PY
cat "$DIR/probe.out"
grep -q '^ok' "$DIR/probe.out" || die "the node did not serve"
n408=$(sed -n 's/^408s //p' "$DIR/probe.out")
[ "$n408" -ge $((HMAX - 4)) ] || die "only $n408 of $HMAX half-sent requests were answered 408"
[ "$(metric "$HL" sabha_http_head_timeouts_total)" -ge 1 ] || die "no head timeout counted"
[ "$(metric "$HL" sabha_http_connections_dropped_total)" -ge 1 ] || die "no half-sent request made room"
for f in maxclients client_recent_max_output_buffer clients_refused clients_timed_out \
         output_buffer_disconnects query_buffer_disconnects clients_memory maxmemory_clients; do
  rcli "$PL" INFO clients | grep -q "^$f:" || die "INFO clients has no $f"
done
for m in sabha_clients_max sabha_clients_refused_total sabha_clients_timed_out_total \
         sabha_client_output_buffer_disconnects_total sabha_client_query_buffer_disconnects_total \
         sabha_clients_memory_bytes sabha_http_connections; do
  [ -n "$(metric "$HL" "$m")" ] || die "/metrics has no $m"
done
log "ok"
