#!/bin/bash
# Many groups per process (issue 12): a 3-node cluster started with
# `--groups 4` hosts four consensus groups on every node. Each group has a
# leader, and by default group g's is node (g mod 3)+1, so the leaders
# spread; INFO, /status and /metrics show every group. Keys written through
# every node (so commands reach groups led elsewhere) all read back from
# every node; commands whose keys span groups are refused, those of one
# hash tag are served; with one node killed the others keep serving every
# group. sabhad refuses a group count out of bounds. Engine: $4.
. "$(dirname "$0")/lib.sh"
PROTO=${4:?protocol}
N=4

out=$("$SABHAD" --id 1 --peers 1=127.0.0.1:1 --groups 65 2>&1) && die "65 groups taken"
echo "$out" | grep -q "64" || die "no bound named: $out"
out=$("$SABHAD" --id 1 --peers 1=127.0.0.1:1 --groups 0 2>&1) && die "0 groups taken"
echo "$out" | grep -q "1..64" || die "no bound named: $out"

# A port may be held for a moment by someone else's connection: again.
CLUSTERS="$DIR/g"
for try in 1 2 3; do
  "$SABHA" cluster start --dir "$DIR/g" --nodes 3 --protocol "$PROTO" \
    --base-port "$BASE" --groups $N >"$DIR/g.start" 2>&1 && break
  grep -q "is in use" "$DIR/g.start" && [ $try -lt 3 ] ||
    { cat "$DIR/g.start"; die "cluster start failed"; }
  log "a port is in use: again in a second"; sleep 1
done
port() { client_port "$1" "$BASE"; }
# group_leader NODE G: group G's leader as node NODE's INFO says.
group_leader() { rcli "$(port "$1")" INFO groups | tr -d '\r' | sed -n "s/^group$2:.*leader=\([0-9]*\),.*/\1/p"; }
spread() {
  local g
  for g in $(seq 0 $((N - 1))); do
    [ "$(group_leader 1 $g)" = $(( g % 3 + 1 )) ] || return 1
  done
}
for i in $(seq 1 150); do spread && break; sleep 0.1; done
spread || { rcli "$(port 1)" INFO groups; die "the groups' leaders are not spread over the nodes"; }
log "leaders spread: $(for g in $(seq 0 $((N - 1))); do echo -n "g$g=$(group_leader 1 $g) "; done)"
expect $N "$(rcli "$(port 2)" INFO groups | tr -d '\r' | sed -n 's/^groups://p')"
[ "$(metric "$(http_port 3 "$BASE")" sabha_groups)" = $N ] || die "/metrics: no sabha_groups $N"
http_get "$(http_port 3 "$BASE")" /metrics | grep -q '^sabha_group_is_leader{group="2"} 1' ||
  die "/metrics: node 3 does not say it leads group 2"
http_get "$(http_port 1 "$BASE")" /status | grep -q '"groups":\[{"group":0,"role":"leader"' ||
  die "/status: no groups"

# Writes through every node: most reach a group led by another node. A
# -TRYAGAIN (an election on a loaded machine) is retried, a few times.
: >"$DIR/acked"
for i in $(seq 1 240); do
  for try in 1 2 3 4 5 6 7 8 9 10; do
    r=$(rcli "$(port $(( i % 3 + 1 )))" SET "key$i" "v$i")
    [ "$r" = OK ] && break
    sleep 0.2
  done
  [ "$r" = OK ] && echo "key$i" >>"$DIR/acked"
done
n=$(wc -l <"$DIR/acked")
[ "$n" = 240 ] || die "only $n of 240 writes acknowledged on a healthy cluster"
for node in 1 2 3; do
  bad=0
  for k in $(cat "$DIR/acked"); do
    [ "$(rcli "$(port $node)" GET "$k")" = "v${k#key}" ] || bad=$((bad + 1))
  done
  [ $bad = 0 ] || die "node $node: $bad acknowledged keys do not read back"
done
log "240 writes through every node read back from every node"
# Every group took some of them.
for g in $(seq 0 $((N - 1))); do
  c=$(rcli "$(port 1)" INFO groups | tr -d '\r' | sed -n "s/^group$g:.*commit=\([0-9]*\),.*/\1/p")
  [ "${c:-0}" -gt 10 ] || die "group $g committed only ${c:-0} entries"
done

# Keys of one hash tag share a group; keys of several groups are refused.
expect OK "$(rcli "$(port 2)" MSET '{u1}a' 1 '{u1}b' 2)"
expect "1 2" "$(rcli "$(port 3)" MGET '{u1}a' '{u1}b' | tr '\n' ' ' | sed 's/ $//')"
rcli "$(port 1)" MGET key1 key2 key3 key4 key5 key6 | grep -q CROSSSLOT ||
  die "an MGET across groups was not refused"
rcli "$(port 1)" DBSIZE | grep -q CROSSSLOT || die "DBSIZE was not refused"
rcli "$(port 1)" KEYS '{u1}*' | grep -q '{u1}a' || die "KEYS of a hash tag"
out=$(printf 'MULTI\nSET key1 x\nSET key3 y\nEXEC\n' | rcli "$(port 2)")
echo "$out" | grep -q CROSSSLOT || die "a transaction across groups: $out"
out=$(printf 'MULTI\nINCR {u1}n\nINCR {u1}n\nEXEC\n' | rcli "$(port 3)")
echo "$out" | tr '\n' ' ' | grep -q "1 2" || die "a transaction of one tag: $out"

# One node down: the others elect leaders for its groups and serve them all.
"$SABHA" cluster kill 3 --dir "$DIR/g" >/dev/null || die "kill 3"
: >"$DIR/acked2"
for i in $(seq 1 60); do
  for try in $(seq 1 60); do
    r=$(rcli "$(port $(( i % 2 + 1 )))" SET "after$i" "w$i")
    [ "$r" = OK ] && break
    sleep 0.2
  done
  [ "$r" = OK ] || die "write after$i not acknowledged with node 3 down: $r"
  echo "after$i" >>"$DIR/acked2"
done
for node in 1 2; do
  for k in $(cat "$DIR/acked2"); do
    expect "w${k#after}" "$(rcli "$(port $node)" GET "$k")"
  done
  for k in $(head -30 "$DIR/acked"); do
    expect "v${k#key}" "$(rcli "$(port $node)" GET "$k")"
  done
done
log "ok: with node 3 down, 60 more writes and the earlier keys read back"
