#!/bin/sh
# The node part of `make demo`: a real 3-node Raft cluster on 127.0.0.1,
# written to with redis-cli, its leader killed with SIGKILL, and every
# acknowledged write read back through a surviving node. Stops only the
# cluster it started (by the pid files in its own folder).
set -eu
sabha=${1:-./build/sabha}
base=${SABHA_DEMO_PORT:-17800}
dir=$(mktemp -d /tmp/sabha-demo.XXXXXX)
trap '"$sabha" cluster stop --dir "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
status() { "$sabha" cluster status --dir "$dir"; }
port_of() { status | grep -v 'role=down' | sed -n 's/.*client=[0-9.]*:\([0-9]*\).*/\1/p' | head -1; }

echo "== a 3-node Raft cluster on 127.0.0.1, ports $base and up =="
"$sabha" cluster start --nodes 3 --protocol raft --dir "$dir" --base-port "$base"
for i in 1 2 3 4 5 6 7 8 9 10; do
  status | grep -q 'role=leader' && break
  sleep 0.5
done
status
port=$(port_of)
echo
echo "== 100 writes with redis-cli through node at port $port (any node forwards to the leader) =="
acked=0
for i in $(seq 1 100); do
  [ "$(redis-cli -p "$port" SET "key$i" "value$i")" = OK ] && acked=$((acked + 1))
done
echo "acknowledged: $acked"
echo "redis-cli GET key42 -> $(redis-cli -p "$port" GET key42)"
echo
echo "== SIGKILL the leader =="
"$sabha" cluster kill leader --dir "$dir"
for i in 1 2 3 4 5 6 7 8 9 10; do
  sleep 0.5
  status | grep -q 'role=leader' && break
done
status
alive=$(port_of)
lost=0
for i in $(seq 1 100); do
  [ "$(redis-cli -p "$alive" GET "key$i")" = "value$i" ] || lost=$((lost + 1))
done
echo
echo "acknowledged writes read back through port $alive after the failover: $((acked - lost))/$acked (lost: $lost)"
[ "$lost" -eq 0 ]
