#!/bin/bash
# Forwarding links prove the cluster secret (docs/security.md, "Forwarding
# links"). `sabha cluster start` gives every node DIR/secret: a follower's
# link to the leader answers the leader's challenge with a keyed hash of
# it before any client's command goes, so writes through a follower work
# as ever; a client that only says SABHA.FORWARDED is challenged, not
# taken for a link (it stays a client: a follower forwards its commands
# instead of refusing them as a link's), and one with a wrong proof is
# refused, closed and counted. The same with requirepass and admin-pass,
# where the link logs in first, then proves the secret.
. "$(dirname "$0")/lib.sh"

# writes_through_follower NAME [redis-cli auth args]: 200 pipelined writes
# through a follower, each answered OK and read back at the leader.
writes_through_follower() {
  local name=$1; shift
  local L F lp fp n
  L=$(leader_node "$name"); F=$(follower_node "$name")
  lp=$(client_port "$L" "$BASE"); fp=$(client_port "$F" "$BASE")
  n=$(for i in $(seq 1 200); do echo "SET fk$i v$i"; done |
    timeout 30 redis-cli -p "$fp" "$@" 2>/dev/null | grep -c '^OK$')
  expect 200 "$n"
  expect v200 "$(rcli "$lp" "$@" GET fk200 2>/dev/null)"
  expect 0 "$(metric "$(http_port "$L" "$BASE")" sabha_forwarding_link_proofs_refused_total)"
  [ "$(metric "$(http_port "$F" "$BASE")" sabha_forwarded_total)" -ge 200 ] ||
    die "the follower's writes were not forwarded"
}

log "a cluster with a secret: writes through a follower go over a proven link"
start_cluster c 3 raft "$BASE"
wait_leader c
[ -s "$DIR/c/secret" ] || die "no secret in $DIR/c"
writes_through_follower c
L=$(leader_node c); F=$(follower_node c)
lp=$(client_port "$L" "$BASE"); fp=$(client_port "$F" "$BASE")
lh=$(http_port "$L" "$BASE"); fh=$(http_port "$F" "$BASE")

log "a client that says SABHA.FORWARDED is challenged, and stays a client"
got=$(printf 'SABHA.FORWARDED\r\nSET plain 1\r\n' | raw "$fp" | tr -d '\r' | tr '\n' ' ')
echo "$got" | grep -Eq '^\+CHALLENGE [0-9a-f]{64} \+OK $' ||
  die "a client without the proof was taken for a link: $got"
expect 1 "$(rcli "$lp" GET plain)"
expect 1 "$(metric "$fh" sabha_forwarding_link_proofs_refused_total)"

log "a wrong proof is refused, and the connection closed"
proof=$(head -c 32 /dev/zero | od -An -tx1 | tr -d ' \n')
got=$(printf "SABHA.FORWARDED\r\nSABHA.FORWARDED 3 $proof\r\nPING\r\n" | raw "$lp" | tr -d '\r' | tr '\n' ' ')
echo "$got" | grep -Eq '^\+CHALLENGE [0-9a-f]{64} -NOPERM wrong proof of the cluster secret[^+]*$' ||
  die "a wrong proof was not refused: $got"
expect 1 "$(metric "$lh" sabha_forwarding_link_proofs_refused_total)"
grep -q "was not taken for a forwarding link: a wrong proof" "$DIR/c/node$L.log" ||
  die "the refusal is not in the leader's log"
"$SABHA" cluster stop --dir "$DIR/c" >/dev/null 2>&1

log "with requirepass and admin-pass: the link logs in, then proves the secret"
PW=s3cret-Pa55; AD=adm1n-Pa55
start_cluster a 3 raft "$BASE" --requirepass "$PW" --set "admin-pass=$AD"
wait_leader a
writes_through_follower a -a "$PW" --no-auth-warning
