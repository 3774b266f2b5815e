#!/bin/bash
# A stranger dials a node's peer port, claims to be node 3 and sends Raft
# heartbeats with terms near 2^64 (issue 11). A node that took such a term
# could never hold an election again. Two walls stop it:
#
#  1. the cluster `sabha cluster start` makes has a secret (DIR/secret, mode
#     0600, handed to each node by file, never on a command line): the
#     stranger fails the handshake, never replaces the real node 3, and its
#     frames are never read;
#  2. on a loopback cluster run without a secret (allowed for tests), the
#     stranger passes the handshake, but the node refuses every term beyond
#     its bounds (src/node/runtime.h) and counts it.
#
# Either way every node's term stays small and the cluster still serves.
. "$(dirname "$0")/lib.sh"

# forge PEER_PORT CLUSTER_ID VERSION: HELLO as node 3 (protocol VERSION, no
# secret), then heartbeats of huge terms, three times over.
forge() {
  python3 - "$@" <<'EOF'
import os, socket, struct, sys, time
port, cluster, version = int(sys.argv[1]), sys.argv[2].encode(), int(sys.argv[3])
def frame(kind, body):
    return struct.pack("<IBB", len(body) + 2, 1, kind) + body
def hello(node_id):
    body = b"sabhanet" + struct.pack("<HHI", version, 0, node_id) + os.urandom(32)
    body += bytes([len(cluster)]) + cluster + bytes([4]) + b"raft"
    if version >= 2:
        body += struct.pack("<Q", 100000)  # the default dedup-max
    return frame(0x80, body)
def heartbeat(frm, to, term):
    fixed = struct.pack("<IIII", 3, frm, to, 0) + struct.pack("<11Q", term, *[0] * 10)
    return frame(0x01, fixed + struct.pack("<II", 0, 0))
for _ in range(3):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        s.sendall(hello(3) + heartbeat(3, 2, 2**63) + heartbeat(3, 2, 2**64 - 1)
                  + heartbeat(3, 2, 2**62) + heartbeat(3, 2, 2**40))
        time.sleep(0.3)
        s.close()
    except OSError:
        pass
EOF
}

max_term() { status "$1" | sed -n 's/.* term=\([0-9]*\) .*/\1/p' | sort -n | tail -1; }
# refused PORT NAME REASON: a labelled counter's value (0 when absent).
refused() {
  http_get "$1" /metrics | sed -n "s/^$2{reason=\"$3\"} //p" | awk '{s += $1} END {print s + 0}'
}
peers_connected() { http_get "$1" /status | sed -n 's/.*"peers_connected":\([0-9]*\).*/\1/p'; }

log "a cluster from sabha cluster start has a secret, by file"
start_cluster c 3 raft "$BASE"
wait_leader c
S=$DIR/c/secret
[ -f "$S" ] || die "no $S"
expect 600 "$(stat -c %a "$S")"
grep -qxE '[0-9a-f]{64}' "$S" || die "the secret is not 32 random bytes in hex"
SECRET=$(cat "$S")
for i in 1 2 3; do
  grep -qx "secret-file = $S" "$DIR/c/node$i.conf" || die "node $i.conf names no secret-file"
  grep -q "^secret = " "$DIR/c/node$i.conf" && die "node $i.conf holds the secret itself"
  pid=$(status c | sed -n "s/^node=$i .* pid=\([0-9]*\)$/\1/p")
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$SECRET" && die "node $i's command line shows the secret"
done

log "a stranger without the secret is refused at the handshake"
H2=$(http_port 2 "$BASE")
CID=$(sed -n 's/^cluster-id = //p' "$DIR/c/node2.conf")
before=$(max_term c)
forge $((BASE + 201)) "$CID" 7   # node 2's peer port, this version (HS_PROTOCOL_VERSION)
forge $((BASE + 201)) "$CID" 1   # as the acceptance probe speaks
sleep 1
[ "$(refused "$H2" sabha_handshakes_refused_total auth)" -gt 0 ] ||
  die "node 2 counted no refusal for a HELLO without the secret"
after=$(max_term c)
[ "$after" -lt 1000000 ] || die "a forged peer set a term to $after (was $before)"
expect 2 "$(peers_connected "$H2")"   # the real node 3 was never replaced
expect 0 "$(refused "$H2" sabha_peer_frames_refused_total term)"
expect OK "$(rcli $(client_port 2 "$BASE") SET after-forgery 1)"
expect 1 "$(rcli $(client_port 1 "$BASE") GET after-forgery)"

log "without a secret (loopback only), the term bounds refuse what passes"
B2=$((BASE + 10))
start_cluster open 3 raft "$B2"
"$SABHA" cluster stop --dir "$DIR/open" >/dev/null || die "stop"
sed -i '/^secret-file = /d' "$DIR"/open/node*.conf
"$SABHA" cluster start --dir "$DIR/open" >"$DIR/open.restart" 2>&1 ||
  { cat "$DIR/open.restart"; die "restart without a secret"; }
wait_leader open
O2=$(http_port 2 "$B2")
CID=$(sed -n 's/^cluster-id = //p' "$DIR/open/node2.conf")
forge $((B2 + 201)) "$CID" 7
sleep 1
[ "$(refused "$O2" sabha_peer_frames_refused_total term)" -gt 0 ] ||
  die "node 2 counted no refused term"
grep -q "refused a message (type 3) from node 3: its term" "$DIR/open/node2.log" ||
  die "node 2 logged no refused term"
after=$(max_term open)
[ "$after" -lt 1000000 ] || die "a forged heartbeat set a term to $after"
wait_leader open
expect OK "$(rcli $(client_port 2 "$B2") SET after-forgery 1)"
log "ok"
