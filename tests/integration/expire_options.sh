#!/bin/bash
# EXPIRE's options (NX, XX, GT, LT; docs/api.md) through a follower of a
# 3-node cluster, with redis-cli: each condition decided where the entry
# applies, so every replica, read on its own (READONLY), holds the same
# outcome; and CONFIG GET with a pattern longer than the 127 bytes it was
# once cut to. Engine: $4.
. "$(dirname "$0")/lib.sh"
PROTO=${4:?protocol}
start_cluster c 3 "$PROTO" "$BASE"
wait_leader c
F=$(follower_node c)
PF=$(client_port "$F" "$BASE")
c() { rcli "$PF" "$@" 2>&1; }

log "NX and XX: whether the key has an expiry"
expect OK "$(c SET x:plain v)"
expect OK "$(c SET x:gone v)"
expect 0 "$(c EXPIRE x:plain 1000 XX)"
expect 0 "$(c EXPIRE x:plain 1000 GT)"
expect -1 "$(c TTL x:plain)"
expect 1 "$(c EXPIRE x:plain 1000 NX)"
expect 0 "$(c EXPIRE x:plain 2000 NX)"
expect 0 "$(c EXPIRE x:missing 10 NX)"

log "GT and LT: later and sooner instants, no expiry as infinite"
expect 0 "$(c EXPIRE x:plain 500 GT)"
expect 1 "$(c EXPIRE x:plain 3000 GT)"
expect 1 "$(c PEXPIRE x:plain 2000000 XX LT)"
t=$(c TTL x:plain); [ "$t" -gt 1990 ] && [ "$t" -le 2000 ] || die "TTL after LT: $t"
expect 1 "$(c EXPIRE x:gone 1 LT)"
expect 0 "$(c EXPIREAT x:plain 1 GT)"
expect 1 "$(c EXISTS x:plain)"

log "a past time with LT deletes; errors as Redis words them"
expect OK "$(c SET x:past v)"
expect 1 "$(c PEXPIREAT x:past 1 LT)"
expect 0 "$(c EXISTS x:past)"
expect "ERR NX and XX, GT or LT options at the same time are not compatible" \
  "$(c EXPIRE x:plain 10 NX GT)"
expect "ERR GT and LT options at the same time are not compatible" \
  "$(c EXPIRE x:plain 10 GT LT)"
expect "ERR Unsupported option SOON" "$(c EXPIRE x:plain 10 GT SOON)"

log "every replica holds the same outcome"
sleep 1.6 # x:gone (1 s) has expired by the log's clock on every node
for n in 1 2 3; do
  p=$(client_port "$n" "$BASE")
  out=$(printf 'READONLY\nEXISTS x:plain\nEXISTS x:gone\nEXISTS x:past\nTTL x:plain\n' |
    rcli "$p" 2>&1 | tr '\n' ' ')
  echo "$out" | grep -qE '^OK 1 0 0 (199[0-9]|2000) $' || die "node $n: $out"
done

log "CONFIG GET: a long pattern matched whole, one past the bound refused"
stars=$(printf '%*s' 127 '' | tr ' ' '*')
expect "port $PF" "$(c CONFIG GET "${stars}port" | tr '\n' ' ' | sed 's/ $//')"
expect "" "$(c CONFIG GET "${stars}nothing")"
long=$(printf '%*s' 1025 '' | tr ' ' '*')
expect "ERR the pattern is longer than 1024 bytes" "$(c CONFIG GET "$long")"
log "ok"
