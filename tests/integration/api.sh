#!/bin/bash
# The coordination API (docs/api.md) through a follower of a 3-node
# cluster: MULTI/EXEC as Redis answers it, WATCH that aborts, the expiry
# commands, SCAN's cursor over the ordered keys, SABHA.WATCH in commit
# order and resumed FROM a revision, leases, and the HTTP key-value API with
# its status codes, kept-alive connections and server-sent events.
# Engine: $4.
. "$(dirname "$0")/lib.sh"
PROTO=${4:?protocol}
# Snapshots every 30 entries: a node that restarts keeps no events from
# before its snapshot, which SABHA.WATCH FROM must say.
start_cluster c 3 "$PROTO" "$BASE" --set compact-entries=30
wait_leader c
F=$(follower_node c)
PF=$(client_port "$F" "$BASE"); HF=$(http_port "$F" "$BASE")
c() { rcli "$PF" "$@" 2>&1; }
U="http://127.0.0.1:$HF"

log "MULTI/EXEC: QUEUED, the array, errors per command, EXECABORT"
out=$(printf 'MULTI\nSET t:a 1\nINCR t:a\nSET t:w hello\nINCR t:w\nGET t:a\nEXEC\n' |
  rcli "$PF" 2>&1 | tr -s '\n' ' ')
expect "OK QUEUED QUEUED QUEUED QUEUED QUEUED OK 2 OK ERR value is not an integer or out of range 2 " "$out"
out=$(printf 'MULTI\nSET t:b 1\nNOSUCH x\nEXEC\nGET t:b\n' | rcli "$PF" 2>&1 | tr -s '\n' ' ')
echo "$out" | grep -q 'EXECABORT' || die "a queuing error did not abort EXEC: $out"
expect "" "$(c GET t:b)"
expect "ERR EXEC without MULTI" "$(c EXEC)"

log "WATCH through the follower: unchanged applies, changed aborts"
out=$(printf 'WATCH t:a\nMULTI\nINCR t:a\nEXEC\n' | rcli "$PF" 2>&1 | tr -s '\n' ' ')
expect "OK OK QUEUED 3 " "$out"
out=$( (echo 'WATCH t:a'; echo 'MULTI'; echo 'SET t:a 100'; sleep 0.5; echo 'EXEC') |
  rcli "$PF" 2>&1 & sleep 0.2; c SET t:a 7 >/dev/null; wait)
expect 7 "$(c GET t:a)"

log "expiry commands and the string commands"
expect 1 "$(c SETNX n:1 a)"; expect 0 "$(c SETNX n:1 b)"
expect a "$(c GETSET n:1 c)"; expect c "$(c GETDEL n:1)"; expect "" "$(c GET n:1)"
expect 5 "$(c APPEND n:2 hello)"; expect 5 "$(c STRLEN n:2)"
c SET e:1 v >/dev/null
expect 1 "$(c PEXPIRE e:1 600)"
t=$(c PTTL e:1); [ "$t" -gt 0 ] && [ "$t" -le 600 ] || die "PTTL after PEXPIRE: $t"
expect 1 "$(c PERSIST e:1)"; expect -1 "$(c TTL e:1)"
expect 1 "$(c EXPIRE e:1 1)"; sleep 1.6; expect "" "$(c GET e:1)"; expect -2 "$(c TTL e:1)"

log "SCAN: the cursor walks every key once, in order, COUNT at a time"
for i in $(seq 1 23); do c SET "s:$(printf %02d "$i")" "$i" >/dev/null; done
cursor=0; seen=""; calls=0
while :; do
  reply=$(c SCAN "$cursor" MATCH 's:*' COUNT 4)
  cursor=$(echo "$reply" | head -1)
  seen="$seen $(echo "$reply" | tail -n +2 | tr '\n' ' ')"
  calls=$((calls + 1))
  [ "$cursor" = 0 ] && break
  [ $calls -lt 20 ] || die "SCAN did not end"
done
expect "$(for i in $(seq 1 23); do printf 's:%02d ' "$i"; done)" "$(echo $seen) "
expect "s:01 s:02 s:03 s:04 s:05 s:06 s:07 s:08 s:09" "$(c KEYS 's:0?' | tr '\n' ' ' | sed 's/ $//')"
expect "ERR invalid cursor" "$(c SCAN 9x)"

log "SABHA.WATCH: puts and deletes in commit order, resumable FROM"
timeout 5 redis-cli -p "$PF" SABHA.WATCH w: FROM 0 >"$DIR/watch.out" 2>&1 &
sleep 0.5
c SET w:x 1 >/dev/null; c DEL w:x >/dev/null; c SET w:y 2 >/dev/null
c SET other 1 >/dev/null
wait
tr '\n' ' ' <"$DIR/watch.out" >"$DIR/watch.flat"
grep -qE '^put w:x 1 ([0-9]+) del w:x  ([0-9]+) put w:y 2 ([0-9]+) $' "$DIR/watch.flat" ||
  die "SABHA.WATCH w: gave: $(cat "$DIR/watch.flat")"
revs=$(awk 'NR%4==0' "$DIR/watch.out") # kind, key, value, revision
[ "$(echo "$revs" | sort -n | tr '\n' ' ')" = "$(echo "$revs" | tr '\n' ' ')" ] ||
  die "revisions out of order: $revs"
last=$(echo "$revs" | tail -1)
out=$(timeout 2 redis-cli -p "$PF" SABHA.WATCH w:y FROM "$last" | tr '\n' ' ')
expect "put w:y 2 $last " "$out"

log "leases: keys go when the lease expires; keepalive and revoke"
l=$(c SABHA.LEASE.GRANT 800)
expect OK "$(c SET l:k v LEASE "$l")"
is=$(c SET l:x v LEASE 999999); echo "$is" | grep -q 'no such lease' || die "$is"
sleep 0.5; expect 800 "$(c SABHA.LEASE.KEEPALIVE "$l")"; sleep 0.5
expect v "$(c GET l:k)"
sleep 1; expect "" "$(c GET l:k)"
c SABHA.LEASE.KEEPALIVE "$l" | grep -q 'no such lease' || die "an expired lease lives"
l=$(c SABHA.LEASE.GRANT 60000)
c SET l:a 1 LEASE "$l" >/dev/null; c SET l:b 1 LEASE "$l" >/dev/null
expect 2 "$(c SABHA.LEASE.REVOKE "$l")"; expect 0 "$(c EXISTS l:a l:b)"

log "HTTP: PUT, GET, DELETE, ranges, status codes, server-sent events"
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
expect 204 "$(code -X PUT --data-binary 'hello world' "$U/v1/kv/h%3A1")"
expect "hello world" "$(curl -sf "$U/v1/kv/h:1")"
expect "hello world" "$(c GET h:1)"
expect 404 "$(code "$U/v1/kv/h:none")"
expect 204 "$(code -X DELETE "$U/v1/kv/h:1")"
expect 404 "$(code -X DELETE "$U/v1/kv/h:1")"
expect 405 "$(code -X DELETE "$U/v1/watch")"
expect 411 "$(code -X PUT -H 'Transfer-Encoding: chunked' --data-binary x "$U/v1/kv/h:2")"
head -c 1048577 /dev/zero >"$DIR/big"
expect 413 "$(code -X PUT --data-binary @"$DIR/big" "$U/v1/kv/h:2")"
json=$(curl -sf "$U/v1/kv/?prefix=s:0&limit=3")
echo "$json" | grep -q '"more":true' || die "range: $json"
[ "$(echo "$json" | grep -o '"key"' | wc -l)" = 3 ] || die "range limit: $json"
echo "$json" | grep -qE '\{"key":"s:01","value":"1","revision":[0-9]+\}' || die "range: $json"
(timeout 3 curl -sN "$U/v1/watch?prefix=hw:&from=0" >"$DIR/sse.out" 2>&1 &)
sleep 0.5
curl -sf -X PUT --data-binary x "$U/v1/kv/hw:1" >/dev/null
curl -sf -X DELETE "$U/v1/kv/hw:1" >/dev/null
sleep 2
grep -q '^event: put' "$DIR/sse.out" && grep -q '^event: del' "$DIR/sse.out" &&
  grep -q '"key":"hw:1","value":"x"' "$DIR/sse.out" || die "SSE: $(cat "$DIR/sse.out")"
# Several requests on one kept-alive connection.
n=$(curl -sv "$U/v1/kv/s:01" "$U/v1/kv/s:02" 2>&1 | grep -c 'Re-using')
expect 1 "$n"

log "a restarted node refuses FROM a revision its snapshot swallowed"
"$SABHA" cluster restart "$F" --dir "$DIR/c" >/dev/null 2>&1 || die "restart failed"
sleep 2
out=$(timeout 2 redis-cli -p "$PF" SABHA.WATCH "" FROM 1 2>&1)
echo "$out" | grep -q 'compacted: this node streams from revision' || die "FROM 1 after a restart: $out"
expect 410 "$(code --max-time 2 "$U/v1/watch?from=1")"
c SET w:z 3 >/dev/null
rev=$(curl -sf "$U/v1/kv/?prefix=w:z" | grep -oE '"revision":[0-9]+\}' | grep -oE '[0-9]+')
out=$(timeout 2 redis-cli -p "$PF" SABHA.WATCH w:z FROM "$rev" | tr '\n' ' ')
expect "put w:z 3 $rev " "$out"
log "ok"
