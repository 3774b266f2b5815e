#!/bin/bash
# An HTTPS connection that sends no request, only a TLS KeyUpdate asking
# for one back every second, is closed when its head's 5 s are up: the
# head's time runs from the connection (or the last response), and a
# record that carries no HTTP, the node's answer to a KeyUpdate included,
# is no progress. (Each answer's write restarted the head's timer, so such
# a client held its slot for as long as it liked.) Needs the helper
# tls_key_updates (tls_key_updates.c), its path the fourth argument. Uses
# BASE.
. "$(dirname "$0")/lib.sh"
UPDATER=${4:?usage: tls_key_updates.sh SABHA SABHAD BASE TLS_KEY_UPDATES}
start_cluster k 1 raft "$BASE" --tls
wait_leader k
HP=$(http_port 1 "$BASE")
log "a client that asks for a key update every second and sends no request"
out=$(timeout 30 "$UPDATER" "$DIR/k/ca.crt" "$HP" 12 1000) || die "the helper: $out"
log "$out"
case "$out" in
closed*) ;;
*) die "the connection outlived its head's 5 s: $out" ;;
esac
ms=$(echo "$out" | sed -n 's/^closed after \([0-9]*\) ms.*/\1/p')
[ "$ms" -le 6500 ] || die "closed only after $ms ms"
updates=$(echo "$out" | sed -n 's/.*, \([0-9]*\) updates$/\1/p')
[ "$updates" -ge 4 ] || die "only $updates key updates: the test proves nothing"
log "an HTTPS request on a connection of its own still works"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$DIR/k/ca.crt" \
  --max-time 5 "https://127.0.0.1:$HP/health")
expect 200 "$code"
log "ok"
