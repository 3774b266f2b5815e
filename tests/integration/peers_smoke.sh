#!/bin/bash
# bench/peers/run --smoke: a few seconds of every system it compares (sabha
# raft, etcd, Redis with appendfsync always), to keep the script working;
# the figures are not judged here (benchmarks measure, tests decide), only
# that each system produced one and that the floor was measured.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
"$ROOT/bench/peers/run" --smoke --no-install --base-port "$BASE" \
  --sabha "$SABHA" --dir "$DIR/peers" >"$DIR/peers.out" 2>"$DIR/peers.err"
rc=$?
cat "$DIR/peers.out"
[ $rc = 0 ] || { tail -20 "$DIR/peers.err"; die "bench/peers/run --smoke exited $rc"; }
for row in "sabha raft" "etcd v2 PUT" "Redis AOF always"; do
  grep -qE "^\| $row \| [0-9,]+ \([0-9.]+ ms\) \| [0-9,]+ " "$DIR/peers.out" ||
    die "no figures for $row"
done
grep -qE '^fsync_4k_ms_p50: [0-9.]+$' "$DIR/peers.out" || die "no fsync floor"
grep -qE '^raft_p50_1conn_vs_floor: [0-9.]+$' "$DIR/peers.out" || die "no ratio to the floor"
log "ok"
