#!/bin/bash
# Automatic compaction: with compact-entries small, nodes snapshot their
# store and drop the log prefix; a node that was down while the others
# compacted catches up by InstallSnapshot; a node restarted from a snapshot
# plus a log suffix has everything. Engine: $4.
. "$(dirname "$0")/lib.sh"
PROTO=${4:?protocol}
start_cluster c 3 "$PROTO" "$BASE" --set compact-entries=100 --set wal-segment-bytes=1200000
wait_leader c
P1=$(client_port 1 "$BASE"); P3=$(client_port 3 "$BASE"); H3=$(http_port 3 "$BASE")
for i in $(seq 1 150); do echo "a$i x$i"; done >"$DIR/keys1"
sed 's/^/SET /' "$DIR/keys1" | rcli "$P1" >/dev/null
"$SABHA" cluster kill 3 --dir "$DIR/c" >/dev/null || die "kill 3"
log "node 3 down; writing past two more snapshots"
pad=$(head -c 3000 /dev/zero | tr '\0' z) # values that fill WAL segments
for i in $(seq 1 400); do echo "b$i y$i$pad"; done >"$DIR/keys2"
sed 's/^/SET /' "$DIR/keys2" | rcli "$P1" | grep -vc OK | grep -q '^0$' || die "writes failed"
L=$(leader_node c)
[ "$(metric $(http_port "$L" "$BASE") sabha_snapshots_taken_total)" -ge 2 ] || die "the leader took no snapshots"
"$SABHA" cluster start --dir "$DIR/c" >/dev/null || die "start node 3"
for i in $(seq 1 100); do
  [ "$(metric "$H3" sabha_applied_index)" -ge 550 ] 2>/dev/null && break
  sleep 0.1
done
[ "$(metric "$H3" sabha_snapshots_installed_total)" -ge 1 ] || die "node 3 installed no snapshot"
cat "$DIR/keys1" "$DIR/keys2" >"$DIR/keys"
log "node 3 caught up by snapshot; checking its own store"
lost=$( (echo "SABHA.STALE on"; cut -d' ' -f1 "$DIR/keys" | sed 's/^/GET /') | rcli "$P3" | tail -n +2 |
  paste -d' ' <(cut -d' ' -f2 "$DIR/keys") - | awk '$1 != $2' | wc -l)
expect 0 "$lost"
log "every node restarted: recovery from snapshot and log"
"$SABHA" cluster stop --dir "$DIR/c" >/dev/null
"$SABHA" cluster start --dir "$DIR/c" >/dev/null || die "restart"
wait_leader c
grep -q "snapshot at [1-9]" "$DIR/c/node1.log" || die "node 1 did not start from a snapshot"
[ "$(metric $(http_port 1 "$BASE") sabha_wal_segments)" -le 2 ] || die "old WAL segments were not dropped"
expect 0 "$(verify_keys "$DIR/keys" "$P1" "$P3")"
log "ok"
