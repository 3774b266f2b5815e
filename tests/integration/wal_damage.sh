#!/bin/bash
# A node restarted with a truncated or bit-flipped WAL tail recovers (the
# torn tail is cut, the node catches up from its peers); after a clean stop
# a flipped bit in its last batch is damage: refused with a message naming
# file and offset under refuse-corrupt-log, repaired by default (cut at the
# damage, refilled from the peers); so is corruption in the middle of the
# log; discard-corrupt-log gives the whole log up.
. "$(dirname "$0")/lib.sh"
start_cluster c 3 raft "$BASE"
wait_leader c
P1=$(client_port 1 "$BASE"); P3=$(client_port 3 "$BASE")
for i in $(seq 1 100); do echo "k$i v$i"; done >"$DIR/keys"
sed 's/^/SET /' "$DIR/keys" | rcli "$P1" | grep -vc OK | grep -q '^0$' || die "writes failed"
SEG=$DIR/c/node3/wal-0000000000000001.log

restart_node3() {
  "$SABHA" cluster restart 3 --dir "$DIR/c" >"$DIR/restart.out" 2>&1
}
check_node3() { # node 3's own store, once it has caught up
  local i
  for i in $(seq 1 50); do
    [ "$(printf 'SABHA.STALE on\nDBSIZE\n' | rcli "$P3" | tail -1)" -ge "$1" ] && break
    sleep 0.1
  done
  local got
  got=$(printf 'SABHA.STALE on\nGET k1\nGET k100\n' | rcli "$P3" | tr '\n' ' ')
  expect "OK v1 v100 " "$got"
}

log "a truncated tail is cut and the node recovers"
"$SABHA" cluster stop --dir "$DIR/c" >/dev/null
# Every node closed its log (a second SIGTERM once killed a node in the
# middle of that, and its tail was then zeros, not a torn record).
for i in 1 2 3; do
  tail -1 "$DIR/c/node$i.log" | grep -q " INFO stopped$" ||
    die "node $i did not stop cleanly: $(tail -1 "$DIR/c/node$i.log")"
done
size=$(stat -c %s "$SEG")
truncate -s $((size - 7)) "$SEG"
"$SABHA" cluster start --dir "$DIR/c" >/dev/null || die "start after truncation"
wait_leader c
grep -q "torn tail was cut\|log recovery" "$DIR/c/node3.log" || die "no word of the repair"
check_node3 100

log "a bit flipped in the last record is cut and the node recovers"
expect OK "$(rcli "$P1" SET last one)"
sleep 0.3
"$SABHA" cluster stop --dir "$DIR/c" >/dev/null
size=$(stat -c %s "$SEG")
byte=$(od -An -tu1 -j $((size - 1)) -N1 "$SEG" | tr -d ' ')
printf "$(printf '\\%03o' $((byte ^ 4)))" | dd of="$SEG" bs=1 seek=$((size - 1)) conv=notrunc 2>/dev/null
"$SABHA" cluster start --dir "$DIR/c" >/dev/null || die "start after a flipped tail"
wait_leader c
check_node3 101
expect one "$(rcli "$P3" GET last)"

log "after a clean stop, a bit flipped in the last batch is damage, not a torn tail"
# The node closed its log cleanly (a CLOSE record of 24 bytes ends it), so
# every byte before that record was fsynced: the last data byte flipped is
# damage to what may be an acknowledged write. Told to refuse damage, the
# node refuses, naming file and offset.
expect OK "$(rcli "$P1" SET later two)"
sleep 0.3
"$SABHA" cluster stop --dir "$DIR/c" >/dev/null
echo "refuse-corrupt-log = true" >>"$DIR/c/node3.conf"
size=$(stat -c %s "$SEG")
at=$((size - 25))
byte=$(od -An -tu1 -j $at -N1 "$SEG" | tr -d ' ')
printf "$(printf '\\%03o' $((byte ^ 2)))" | dd of="$SEG" bs=1 seek=$at conv=notrunc 2>/dev/null
"$SABHA" cluster start --dir "$DIR/c" >"$DIR/start.out" 2>&1 && die "node 3 started on a damaged last batch"
grep -q "FATAL.*wal-0000000000000001.log: offset [0-9]*" "$DIR/c/node3.log" || die "the refusal names no file and offset"
status c | grep -q "^node=3 role=down" || die "node 3 is running"
wait_leader c
log "... and by default it repairs the log from its peers"
sed -i '/^refuse-corrupt-log/d' "$DIR/c/node3.conf"
restart_node3 || { cat "$DIR/restart.out"; die "no start with repair"; }
grep -q "repaired a damaged log: .*wal-0000000000000001.log: offset [0-9]*" "$DIR/c/node3.log" || die "the repair names no file and offset"
check_node3 102
expect two "$(rcli "$P3" GET later)"
ls -d "$DIR"/c/node3/damaged-* >/dev/null || die "the damaged part of the log was not kept"

log "corruption in the middle of the log: repaired, the node rejoins"
"$SABHA" cluster stop --dir "$DIR/c" >/dev/null
byte=$(od -An -tu1 -j 200 -N1 "$SEG" | tr -d ' ')
printf "$(printf '\\%03o' $((byte ^ 1)))" | dd of="$SEG" bs=1 seek=200 conv=notrunc 2>/dev/null
"$SABHA" cluster start --dir "$DIR/c" >"$DIR/start.out" 2>&1 || { cat "$DIR/start.out"; die "no start on a log damaged in the middle"; }
wait_leader c
grep -q "repaired a damaged log: .*offset 200\|repaired a damaged log: .*offset 1[0-9][0-9]:" "$DIR/c/node3.log" || die "no word of the repair at the damage"
check_node3 102
log "... and with discard-corrupt-log the whole log is given up, and it rejoins"
"$SABHA" cluster stop --dir "$DIR/c" >/dev/null
byte=$(od -An -tu1 -j 100 -N1 "$SEG" | tr -d ' ')
printf "$(printf '\\%03o' $((byte ^ 1)))" | dd of="$SEG" bs=1 seek=100 conv=notrunc 2>/dev/null
echo "discard-corrupt-log = true" >>"$DIR/c/node3.conf"
"$SABHA" cluster start --dir "$DIR/c" >"$DIR/start.out" 2>&1 || { cat "$DIR/start.out"; die "no start with discard-corrupt-log"; }
wait_leader c
grep -q "discarded a damaged log" "$DIR/c/node3.log" || die "no word of the discard"
check_node3 102
log "ok"
