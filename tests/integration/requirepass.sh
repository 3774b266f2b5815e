#!/bin/bash
# Client authentication on a real cluster (docs/operations.md, "Client
# authentication"). With `sabha cluster start --requirepass`, a client must
# AUTH before anything but AUTH, HELLO and QUIT (-NOAUTH), a wrong password
# is -WRONGPASS, and a write through a follower is forwarded over a link
# that logs in to the leader itself, while a follower forwards nothing for a
# client that has not logged in. The password reaches the nodes in a 0600
# file, never on a command line. With admin-pass, SABHA.LEADER needs
# `AUTH admin`. Protected mode refuses a client from another address when
# no password is set.
. "$(dirname "$0")/lib.sh"
PW=s3cret-Pa55
SOLO=""
# The lone node of the protected-mode part is not a `sabha cluster`: stop
# it here too if the test dies while it runs.
trap 'rc=$?; [ -n "$SOLO" ] && kill "$SOLO" 2>/dev/null; (exit $rc); cleanup' EXIT
start_cluster c 3 raft "$BASE" --requirepass "$PW"
wait_leader c
L=$(leader_node c); F=$(follower_node c)
lp=$(client_port "$L" "$BASE"); PF=$(client_port "$F" "$BASE")
auth() { rcli "$1" -a "$PW" --no-auth-warning "${@:2}"; }

log "the password is in a 0600 file, not in the configs or on a command line"
expect 600 "$(stat -c %a "$DIR/c/requirepass")"
grep -q "^requirepass-file = $DIR/c/requirepass$" "$DIR/c/node1.conf" || die "node1.conf names no requirepass-file"
! grep -q "$PW" "$DIR"/c/node*.conf || die "the password is in a node's config"
! tr '\0' ' ' <"/proc/$(cat "$DIR/c/node1.pid")/cmdline" | grep -q "$PW" || die "the password is on a command line"

log "without AUTH: -NOAUTH, at the leader and at a follower"
redis-cli -p $lp SET a 1 2>&1 | grep -q NOAUTH || die "no NOAUTH at the leader"
[ "$(redis-cli -p $lp -a s3cret-Pa55 --no-auth-warning SET a 1)" = OK ] || die "no OK with the password"
expect "NOAUTH Authentication required." "$(rcli $lp GET a)"
expect "NOAUTH Authentication required." "$(rcli $lp PING)"
expect "NOAUTH Authentication required." "$(rcli $PF SET a 2)"
expect OK "$(rcli $lp QUIT)"
rcli $lp HELLO 2 | grep -q "^NOAUTH HELLO must be called with the client already authenticated" || die "HELLO without AUTH"

log "before AUTH only small commands: a 20 KB argument is a protocol error"
big=$(head -c 20000 /dev/zero | tr '\0' x)
set_b="*3\r\n\$3\r\nSET\r\n\$1\r\nb\r\n\$20000\r\n$big\r\n"
printf "$set_b" | raw $lp | grep -q "unauthenticated bulk length" || die "a 20 KB argument was taken before AUTH"
expect "+OK +OK" "$(printf "AUTH $PW\r\n$set_b" | raw $lp | tr -d '\r' | tr '\n' ' ' | sed 's/ $//')"
log "over HTTP: 401 without the password, whatever the body's size"
hl=$(http_port "$L" "$BASE")
expect 401 "$(printf '%s' "$big" | curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary @- http://127.0.0.1:$hl/v1/kv/b)"
expect 204 "$(printf '%s' "$big" | curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $PW" -X PUT --data-binary @- http://127.0.0.1:$hl/v1/kv/b)"
expect 20000 "$(auth $lp STRLEN b)"

log "a follower forwards only what an authenticated client sent"
fwd() { auth "$PF" INFO stats | tr -d '\r' | sed -n 's/^forwarded_commands://p'; }
before=$(fwd)
for i in 1 2 3; do rcli $PF SET stolen $i >/dev/null; done
expect "$before" "$(fwd)"
expect "" "$(auth $lp GET stolen)"

log "with the password: writes at the leader and through a follower (forwarded)"
expect OK "$(auth $lp SET k leader)"
expect OK "$(auth $PF SET k2 follower)"
[ "$(fwd)" -gt "$before" ] || die "the follower's write was not forwarded"
expect follower "$(auth $lp GET k2)"
expect leader "$(auth $PF GET k)"
expect OK "$(rcli $lp AUTH default "$PW")"
expect OK "$(printf 'HELLO 2 AUTH default %s\nSET h 1\n' "$PW" | rcli $PF | tail -1)"
expect "(set)" "$(auth $lp CONFIG GET requirepass | tail -1)"

log "a wrong password: -WRONGPASS, and the connection stays unauthenticated"
rcli $lp -a wrong --no-auth-warning SET a 1 2>&1 | grep -q "WRONGPASS invalid username-password pair or user is disabled." || die "no WRONGPASS"
expect "WRONGPASS invalid username-password pair or user is disabled." "$(rcli $lp AUTH default wrong)"
expect "WRONGPASS invalid username-password pair or user is disabled." "$(rcli $lp AUTH admin "$PW")"
expect "$(printf 'WRONGPASS invalid username-password pair or user is disabled.\nNOAUTH Authentication required.')" \
  "$(printf 'AUTH nope\nGET k\n' | rcli $lp | grep -v '^$')"

log "a client cannot pass for a forwarding link"
expect "NOAUTH Authentication required." "$(rcli $lp SABHA.FORWARDED)"
expect "$(printf 'NOAUTH Authentication required.\nNOAUTH Authentication required.')" \
  "$(printf 'SABHA.FORWARDED\nSET k forged\n' | rcli $lp | grep -v '^$')"
expect leader "$(auth $lp GET k)"

log "without admin-pass, SABHA.LEADER follows requirepass"
expect "NOAUTH Authentication required." "$(rcli $lp SABHA.LEADER $F)"
expect OK "$(auth $lp SABHA.LEADER $F)"
for i in $(seq 1 50); do [ "$(leader_node c)" = "$F" ] && break; sleep 0.1; done
expect "$F" "$(leader_node c)"

log "with admin-pass, SABHA.LEADER needs AUTH admin, also through a follower"
printf 'admin-Pa55\n' >"$DIR/adminpass"
chmod 600 "$DIR/adminpass"
for n in 1 2 3; do echo "admin-pass-file = $DIR/adminpass" >>"$DIR/c/node$n.conf"; done
"$SABHA" cluster stop --dir "$DIR/c" >/dev/null || die "stop"
"$SABHA" cluster start --dir "$DIR/c" >"$DIR/c.restart" 2>&1 || { cat "$DIR/c.restart"; die "restart"; }
wait_leader c
L=$(leader_node c); F=$(follower_node c)
lp=$(client_port "$L" "$BASE"); PF=$(client_port "$F" "$BASE")
admin() { rcli "$1" --user admin --pass admin-Pa55 --no-auth-warning "${@:2}"; }
expect "NOPERM this user has no permissions to run the 'sabha.leader' command" "$(auth $lp SABHA.LEADER $F)"
expect "NOPERM this user has no permissions to run the 'sabha.leader' command" "$(auth $PF SABHA.LEADER $F)"
expect leader "$(auth $PF GET k)"
expect OK "$(auth $PF SET k3 via-admin-link)"
expect via-admin-link "$(admin $lp GET k3)"
expect OK "$(admin $PF SABHA.LEADER $F)"
for i in $(seq 1 50); do [ "$(leader_node c)" = "$F" ] && break; sleep 0.1; done
expect "$F" "$(leader_node c)"

log "an empty password file is refused at start-up, not taken for no password"
: >"$DIR/empty"
out=$("$SABHAD" --id 1 --peers 1=127.0.0.1:$((BASE + 240)) --requirepass-file "$DIR/empty" 2>&1)
expect 2 "$?"
echo "$out" | grep -q "requirepass-file: .* is empty" || die "no word of the empty file: $out"

log "protected mode: no password, a client from another address is refused"
IP=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9]+\.' | grep -v '^127\.' | head -1)
if [ -z "$IP" ]; then
  log "no non-loopback IPv4 address here: protected mode left to unit.test_runtime_auth"
else
  SP=$((BASE + 240)); SC=$((BASE + 241)); SH=$((BASE + 242))
  # Off loopback a node needs a peer secret too (docs/security.md).
  (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/solo-secret")
  solo() { # [extra sabhad flags]: one node on every address
    "$SABHAD" --id 1 --peers 1=127.0.0.1:$SP --bind 0.0.0.0 --client-port $SC \
      --http-port $SH --data "$DIR/solo" --secret-file "$DIR/solo-secret" \
      "$@" >>"$DIR/solo.log" 2>&1 &
    SOLO=$!
    for i in $(seq 1 50); do rcli $SC PING >/dev/null 2>&1 && return 0; sleep 0.1; done
    die "the lone node did not start"
  }
  solo_stop() { kill "$SOLO"; wait "$SOLO"; SOLO=""; }
  solo
  expect PONG "$(rcli $SC PING)"
  timeout 10 redis-cli -h "$IP" -p $SC PING 2>&1 | grep -q "DENIED sabha is running in protected mode" || die "no DENIED from $IP"
  solo_stop
  solo --protected-mode no
  expect PONG "$(timeout 10 redis-cli -h "$IP" -p $SC PING)"
  solo_stop
  solo --requirepass "$PW"
  expect "NOAUTH Authentication required." "$(timeout 10 redis-cli -h "$IP" -p $SC PING)"
  expect PONG "$(timeout 10 redis-cli -h "$IP" -p $SC -a "$PW" --no-auth-warning PING)"
  solo_stop
fi
log "ok"
