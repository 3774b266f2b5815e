#!/bin/bash
# redis-cli can SET and GET through every node of a Raft cluster; the
# commands sabhad serves answer as Redis's do; pipelined commands come back
# in order; a follower answers -MOVED when told to redirect; SABHA.LEADER
# moves leadership.
. "$(dirname "$0")/lib.sh"
start_cluster c 3 raft "$BASE"
wait_leader c
P1=$(client_port 1 "$BASE"); P2=$(client_port 2 "$BASE"); P3=$(client_port 3 "$BASE")

log "SET through each node, GET through every node"
for p in $P1 $P2 $P3; do expect OK "$(rcli $p SET "key$p" "val$p")"; done
for p in $P1 $P2 $P3; do for q in $P1 $P2 $P3; do
  expect "val$q" "$(rcli $p GET "key$q")"
done; done

log "the string commands"
expect PONG "$(rcli $P1 PING)"
expect hello "$(rcli $P2 ECHO hello)"
expect 1 "$(rcli $P2 INCR counter)"
expect 11 "$(rcli $P3 INCRBY counter 10)"
expect 10 "$(rcli $P1 DECR counter)"
expect OK "$(rcli $P1 MSET m1 a m2 b)"
expect "$(printf 'a\nb\n')" "$(rcli $P2 MGET m1 m2 nokey)"
expect 2 "$(rcli $P3 EXISTS m1 m2 nokey)"
expect 1 "$(rcli $P3 DEL m1 nokey)"
expect "" "$(rcli $P1 GET m1)"
expect "" "$(rcli $P1 SET key$P1 other NX)"
expect OK "$(rcli $P1 SET key$P1 other XX)"
expect OK "$(rcli $P1 SET fresh x NX)"
expect 1 "$(rcli $P2 CAS fresh x y)"
expect 0 "$(rcli $P2 CAS fresh x z)"
expect y "$(rcli $P3 GET fresh)"
expect OK "$(rcli $P1 SET shortlived x PX 300)"
expect x "$(rcli $P2 GET shortlived)"
sleep 0.5
expect "" "$(rcli $P2 GET shortlived)"
rcli $P1 INCR fresh | grep -q "not an integer" || die "INCR of a string"
rcli $P1 FOO bar | grep -q "unknown command 'FOO'" || die "unknown command"
rcli $P1 GET | grep -q "wrong number of arguments for 'get'" || die "arity"
rcli $P1 SET a b PX 0 | grep -q "invalid expire time" || die "PX 0"
n=$(rcli $P2 DBSIZE); [ "$n" = 6 ] || [ "$n" = 7 ] || die "DBSIZE $n"
rcli $P1 INFO | grep -q "^role:" || die "INFO has no role"
rcli $P1 INFO sabha | grep -q "^commit_index:" || die "INFO sabha"
[ "$(rcli $P1 COMMAND COUNT)" -gt 20 ] || die "COMMAND COUNT"
rcli $P1 SABHA.STATUS | grep -q "^leader:" || die "SABHA.STATUS"
expect OK "$(rcli $P1 SELECT 0)"
rcli $P1 CONFIG GET save | head -1 | grep -q save || die "CONFIG GET"

log "stale reads from a follower's own store"
F=$(follower_node c); PF=$(client_port "$F" "$BASE")
expect "$(printf 'OK\nval%s' "$P2")" "$(printf 'SABHA.STALE on\nGET key%s\n' "$P2" | rcli $PF)"

log "pipelined commands are answered in order"
exec 3<>/dev/tcp/127.0.0.1/$PF
printf 'SET p 1\r\nINCR p\r\nGET p\r\nPING\r\nINCR p\r\nGET p\r\n' >&3
out=""; for i in 1 2 3 4 5 6 7 8; do IFS= read -r -t 10 line <&3 || die "no reply $i"; out="$out${line%$'\r'}|"; done
exec 3>&-
expect '+OK|:2|$1|2|+PONG|:3|$1|3|' "$out"

log "SABHA.LEADER hands leadership over"
L=$(leader_node c); TO=$(( L % 3 + 1 ))
expect OK "$(rcli $(client_port "$L" "$BASE") SABHA.LEADER $TO)"
for i in $(seq 1 50); do [ "$(leader_node c)" = "$TO" ] && break; sleep 0.1; done
expect "$TO" "$(leader_node c)"
expect "val$P3" "$(rcli $P1 GET key$P3)"

log "without a quorum, commands wait for a leader, then fail with -TRYAGAIN"
for n in 2 3; do "$SABHA" cluster kill $n --dir "$DIR/c" >/dev/null || die "kill $n"; done
t0=$(date +%s)
# (-TRYAGAIN no leader after leader-wait-ms; or, if node 1 still led when
# the SET came, -TRYAGAIN not committed in time after request-timeout-ms.)
r=$(rcli $P1 SET x y)
echo "$r" | grep -q "^TRYAGAIN" || die "no TRYAGAIN: $r"
[ $(( $(date +%s) - t0 )) -le 9 ] || die "TRYAGAIN took too long"
sleep 1.5 # node 1 has stepped down by now: the wait is for a leader
r=$(rcli $P1 GET x)
echo "$r" | grep -q "^TRYAGAIN no leader" || die "no TRYAGAIN no leader: $r"

log "redirect = moved: a follower answers -MOVED with the leader's address"
B2=$((BASE + 250))
start_cluster m 3 raft "$B2" --set redirect=moved
wait_leader m
LM=$(leader_node m); FM=$(follower_node m)
rcli $(client_port "$FM" "$B2") SET a 1 | grep -q "MOVED 0 127.0.0.1:$(client_port "$LM" "$B2")" || die "no MOVED"
expect OK "$(rcli $(client_port "$LM" "$B2") SET a 1)"
log "ok"
