#!/bin/bash
# A TLS client that never completes its handshake holds a client slot
# (clients-max) it cannot use: without a session it cannot even AUTH. A
# slowloris that sends a record header and then a byte a second of a
# ClientHello that never ends must be closed by the handshake deadline
# (SRV_TLS_HANDSHAKE_TIMEOUT_MS, 10 s), which its trickle does not extend;
# before the deadline it held the slot for as long as it liked. A client
# that completes its handshake is served as before.
. "$(dirname "$0")/lib.sh"
start_cluster c 1 raft "$BASE" --tls
D="$DIR/c"
wait_leader c
port=$(client_port 1 "$BASE")
tcli() { timeout 10 redis-cli --tls --cacert "$D/ca.crt" -p "$@"; }
expect PONG "$(tcli "$port" PING 2>&1)"

t0=$(date +%s)
timeout 30 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 || exit 9
  # A handshake record of 512 bytes, of which only the first few come.
  printf "\x16\x03\x01\x02\x00\x01" >&3
  ( for i in $(seq 1 40); do sleep 1; printf "\x00" >&3 2>/dev/null || exit 0; done ) &
  cat <&3 >/dev/null
  kill $! 2>/dev/null; exit 0' "$port"
rc=$?
took=$(( $(date +%s) - t0 ))
[ $rc -ne 9 ] || die "cannot connect to the client port"
[ $rc -eq 0 ] || die "a handshake that never ends was not closed in 30s (rc $rc)"
[ $took -ge 8 ] || die "closed after ${took}s, before the deadline: a refusal for another reason?"
log "a slow handshake was closed after ${took}s"
expect PONG "$(tcli "$port" PING 2>&1)"
log "ok"
