#!/bin/bash
# Running out of file descriptors does not stop a node. With the limit at
# 200 (hard, so that it cannot be raised), clients-max is lowered to what
# fits beside the descriptors kept for the log, peers and HTTP, with a line
# in the log; connections past it get "max number of clients reached"; and
# with every allowed connection held open the node still writes snapshots
# and log segments. (A node once took clients until no descriptor was left
# and stopped on "cannot save a snapshot: Too many open files".)
. "$(dirname "$0")/lib.sh"
# The limit for the nodes only (a subshell starts them), not for this test.
CLUSTERS="$DIR/c"
(ulimit -n 200 && "$SABHA" cluster start --dir "$DIR/c" --nodes 3 --protocol raft \
  --base-port "$BASE" --set compact-entries=50 >"$DIR/c.start" 2>&1) ||
  { cat "$DIR/c.start"; die "cluster start with 200 descriptors failed"; }
wait_leader c
L=$(leader_node c)
PL=$(client_port "$L" "$BASE")
grep -q "clients-max is lowered" "$DIR/c/node$L.log" || die "no word of the lowered clients-max"
max=$(rcli "$PL" CONFIG GET maxclients | tail -1)
log "clients-max lowered to $max"
[ "$max" -ge 1 ] && [ "$max" -lt 200 ] || die "maxclients $max"

log "hold 100 idle connections to the leader"
python3 - "$PL" 100 > "$DIR/holders.out" 2>&1 <<'PY' &
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks, refused = [], 0
for k in range(n):
    socks.append(socket.create_connection(("127.0.0.1", port)))
# Past clients-max a connection is refused at once, or let in on probation
# (a slot kept for forwarding links) and refused within a second, or
# pushed out by a newer one: each way it is told why.
time.sleep(1.5)
for s in socks:
    s.settimeout(0.01)
    try:
        if b"max number of clients" in s.recv(200):
            refused += 1
    except (socket.timeout, ConnectionError):
        pass
print("held", n, "refused", refused, flush=True)
time.sleep(30)
PY
HOLDERS=$!
for i in $(seq 1 300); do grep -q held "$DIR/holders.out" 2>/dev/null && break; sleep 0.1; done
cat "$DIR/holders.out"
refused=$(sed -n 's/.*refused \([0-9]*\).*/\1/p' "$DIR/holders.out")
[ "${refused:-0}" -ge 1 ] || die "no connection was refused with a clear error"

log "connections past clients-max that are no forwarding link leave within a second"
HL=$(http_port "$L" "$BASE")
for i in $(seq 1 30); do [ "$(metric "$HL" sabha_clients)" -le "$max" ] && break; sleep 0.1; done
[ "$(metric "$HL" sabha_clients)" -le "$max" ] || die "$(metric "$HL" sabha_clients) clients held past clients-max $max"

log "writes through a follower force snapshots while the leader is full"
F=$(follower_node c); PF=$(client_port "$F" "$BASE")
out=$(for i in $(seq 1 300); do echo "SET k$i v$i"; done | rcli "$PF" | grep -v OK | sort | uniq -c)
[ -z "$out" ] || die "writes failed: $out"
kill -0 "$(cat "$DIR/c/node$L.pid")" 2>/dev/null || die "the leader stopped"
[ "$(metric $(http_port "$L" "$BASE") sabha_snapshots_taken_total)" -ge 2 ] || die "the leader took no snapshots"
grep -q "Too many open files" "$DIR"/c/node*.log && die "a node ran out of descriptors"
expect v300 "$(rcli "$PF" GET k300)"
kill "$HOLDERS" 2>/dev/null
log "ok"
