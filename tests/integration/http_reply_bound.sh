#!/bin/bash
# A reply larger than the HTTP key-value API takes in (64 MiB of RESP),
# possible once client-output-buffer-limit is raised or off: the request
# is answered 500 and its connection closed, with a WARN line and
# sabha_http_replies_too_big_total. (The reply was dropped into a buffer
# that refused it, and the request waited for ever: no timeout ends a
# request that is with the node.) Then the node serves the next request as
# before. Uses BASE.
. "$(dirname "$0")/lib.sh"
start_cluster b 1 raft "$BASE" --set 'client-output-buffer-limit=normal 0 0 0'
wait_leader b
HP=$(http_port 1 "$BASE")
U="http://127.0.0.1:$HP"
log "70 values of 1,000,000 bytes: a range over them is 70 MB of RESP"
head -c 1000000 /dev/zero | tr '\0' r >"$DIR/v1m"
for i in $(seq 10 79); do
  curl -sf -o /dev/null -X PUT --data-binary @"$DIR/v1m" "$U/v1/kv/r$i" || die "PUT r$i"
done
log "the range: 500, at once"
expect 500 "$(curl -s -o "$DIR/range.out" -w '%{http_code}' --max-time 20 "$U/v1/kv/?prefix=r&limit=100")"
expect "the reply is larger than the HTTP API takes (64 MiB); use a smaller limit, or RESP" "$(cat "$DIR/range.out")"
expect 1 "$(metric "$HP" sabha_http_replies_too_big_total)"
grep -q "a reply over 67108864 bytes, more than the HTTP API takes" "$DIR/b/node1.log" || die "no WARN line"
log "a smaller range and a GET still work"
expect 200 "$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 "$U/v1/kv/?prefix=r&limit=10")"
expect 1000000 "$(curl -sf --max-time 5 "$U/v1/kv/r42" | wc -c)"
log "ok"
