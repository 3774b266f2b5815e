#!/bin/bash
# Storage faults on a real disk, repaired inside a live cluster: a node is
# stopped, its files are damaged (a zeroed block in the middle of its log, a
# truncated segment, bit flips in both copies of its hard state, a flipped
# snapshot), the cluster takes writes meanwhile, and the node restarts:
# it keeps its term and vote, cuts its log at the damage, catches up from
# its peers, and votes again once its repair guard lifts (INFO
# repair_guard_index back to 0). Every acknowledged write is read back on
# it. docs/operations.md, "Damaged logs".
. "$(dirname "$0")/lib.sh"
PROTO=${4:-raft}
start_cluster c 3 "$PROTO" "$BASE" --set compact-entries=150
wait_leader c
P3=$(client_port 3 "$BASE")
N3=$DIR/c/node3
n=0

write_keys() { # write_keys COUNT: through whichever node leads
  local lp i
  lp=$(client_port "$(leader_node c)" "$BASE")
  for i in $(seq $((n + 1)) $((n + $1))); do echo "SET k$i v$i"; done |
    rcli "$lp" | grep -vc OK | grep -q '^0$' || die "writes failed"
  n=$((n + $1))
}

info3() { printf 'SABHA.STALE on\nINFO sabha\n' | rcli "$P3" | tr -d '\r' | sed -n "s/^$1://p"; }

# caught_up: node 3 holds every key written, and its guard is gone.
caught_up() {
  local i
  for i in $(seq 1 100); do
    [ "$(printf 'SABHA.STALE on\nDBSIZE\n' | rcli "$P3" | tail -1)" -ge "$n" ] &&
      [ "$(info3 repair_guard_index)" = 0 ] && break
    sleep 0.1
  done
  [ "$(info3 repair_guard_index)" = 0 ] || die "node 3's repair guard is still at $(info3 repair_guard_index)"
  local got k
  for k in 1 $((n / 2)) $n; do
    got=$(printf 'SABHA.STALE on\nGET k%s\n' "$k" | rcli "$P3" | tail -1)
    expect "v$k" "$got"
  done
}

restart3() {
  "$SABHA" cluster restart 3 --dir "$DIR/c" >"$DIR/restart.out" 2>&1 ||
    { cat "$DIR/restart.out"; tail -5 "$N3.log" 2>/dev/null; tail -5 "$DIR/c/node3.log"; die "node 3 did not start: $1"; }
}

# Node 3 must not lead while it is damaged: keep it a follower.
[ "$(leader_node c)" = 3 ] && { "$SABHA" cluster kill 3 --dir "$DIR/c" >/dev/null; wait_leader c; restart3 "first restart"; }
# Where the records of a segment end: the log keeps zeros written ahead of
# them (docs/storage.md, "Zeros ahead of the records"), so the file's size
# says nothing.
records_end() { python3 -c 'import sys; print(len(open(sys.argv[1], "rb").read().rstrip(b"\0")))' "$1"; }

write_keys 120
# The damage below needs records past 12 KiB; how many writes fill one
# depends on how they were batched (one record per batch), so write on
# until node 3's is (a bounded number of times).
for i in $(seq 1 20); do
  [ "$(records_end "$(ls "$N3"/wal-*.log | tail -1)")" -gt 12288 ] && break
  write_keys 40
done
"$SABHA" cluster kill 3 --dir "$DIR/c" >/dev/null
SEG=$(ls "$N3"/wal-*.log | tail -1)
term=$(od -An -tu8 -j 24 -N8 "$N3/hardstate" | tr -d ' ')

log "a zeroed 4 KiB block in the middle of the log"
size=$(records_end "$SEG")
[ "$size" -gt 12288 ] || die "segment too small to damage ($size bytes of records)"
dd if=/dev/zero of="$SEG" bs=4096 seek=1 count=1 conv=notrunc 2>/dev/null
write_keys 60
restart3 "zeroed block"
wait_leader c
grep -q "repaired a damaged log: .*$(basename "$SEG")" "$DIR/c/node3.log" || die "no word of the repair"
[ "$(info3 log_repaired)" = 1 ] || die "INFO says no repair"
caught_up
[ "$(info3 term)" -ge "$term" ] || die "node 3 forgot its term ($(info3 term) < $term)"
ls -d "$N3"/damaged-* >/dev/null || die "the damaged part was not kept aside"

log "... and it votes again: the leader dies, node 3 helps elect another"
old=$(leader_node c)
if [ "$old" != 3 ]; then
  "$SABHA" cluster kill "$old" --dir "$DIR/c" >/dev/null
  wait_leader c 20
  write_keys 20
  "$SABHA" cluster restart "$old" --dir "$DIR/c" >/dev/null || die "restart of node $old"
  wait_leader c
fi

log "a segment truncated to 40 %"
[ "$(leader_node c)" = 3 ] && { "$SABHA" cluster kill 3 --dir "$DIR/c" >/dev/null; wait_leader c; restart3 "to step down"; }
"$SABHA" cluster kill 3 --dir "$DIR/c" >/dev/null
SEG=$(ls "$N3"/wal-*.log | tail -1)
truncate -s $(( $(records_end "$SEG") * 4 / 10 )) "$SEG"
write_keys 60
restart3 "truncated segment"
wait_leader c
caught_up

log "bit flips in both blocks of the hard state file (the log still has it)"
"$SABHA" cluster kill 3 --dir "$DIR/c" >/dev/null
for at in 24 4120; do
  byte=$(od -An -tu1 -j $at -N1 "$N3/hardstate" | tr -d ' ')
  printf "$(printf '\\%03o' $((byte ^ 8)))" | dd of="$N3/hardstate" bs=1 seek=$at conv=notrunc 2>/dev/null
done
write_keys 30
restart3 "hard state file flips"
wait_leader c
grep -q "rewrote a damaged block of the hard state file" "$DIR/c/node3.log" || die "no word of the hard state file's repair"
caught_up

log "a flipped bit in the snapshot: the log is given up and refilled"
[ -f "$N3/snapshot" ] || die "node 3 has no snapshot (compact-entries=150, $n writes)"
"$SABHA" cluster kill 3 --dir "$DIR/c" >/dev/null
at=$(( $(stat -c %s "$N3/snapshot") - 3 ))
byte=$(od -An -tu1 -j $at -N1 "$N3/snapshot" | tr -d ' ')
printf "$(printf '\\%03o' $((byte ^ 1)))" | dd of="$N3/snapshot" bs=1 seek=$at conv=notrunc 2>/dev/null
write_keys 30
restart3 "flipped snapshot"
wait_leader c
grep -q "discarded a damaged log" "$DIR/c/node3.log" || die "no word of giving the log up"
caught_up
log "ok ($PROTO): $n writes read back on node 3 after four kinds of damage"
