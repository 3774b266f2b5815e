#!/bin/sh
# Runs every libFuzzer target of tests/fuzz for SECONDS seconds each, one
# after another (so the whole run takes about targets x SECONDS), and prints
# one line per target:
#
#   fuzz_NAME: RUNS runs, 0 crashes
#
# Each target starts from a scratch copy of its corpus (tests/fuzz/corpus/
# NAME), so a run never changes the repository; the inputs it found that
# add coverage stay in BUILD/corpus/NAME. To keep some, merge them in on
# purpose (this adds only those that add coverage):
#   BUILD/tests/fuzz/fuzz_NAME -merge=1 tests/fuzz/corpus/NAME BUILD/corpus/NAME
# A crash, leak, sanitizer report, timeout or out-of-memory is a finding:
# the line says "1 crashes", the input that did it is saved under
# BUILD/findings/NAME/ and its path printed, and the script exits 1 once
# every target has run. Replay one with BUILD/tests/fuzz/fuzz_NAME PATH.
#
#   usage: scripts/fuzz.sh SECONDS BUILD_DIR [NAME...]
#
# BUILD_DIR must hold a -DSABHA_FUZZ=ON build (make fuzz does it).
set -eu

seconds=${1:?usage: fuzz.sh SECONDS BUILD_DIR [NAME...]}
build=${2:?usage: fuzz.sh SECONDS BUILD_DIR [NAME...]}
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -eq 0 ]; then
  # Every target: one fuzz_NAME.c each.
  set -- $(cd "$root/tests/fuzz" && ls fuzz_*.c | sed 's/^fuzz_//; s/\.c$//')
fi

findings=0
for name in "$@"; do
  bin="$build/tests/fuzz/fuzz_$name"
  [ -x "$bin" ] || { echo "fuzz_$name: not built ($bin)" >&2; exit 2; }
  corpus="$build/corpus/$name"
  out="$build/findings/$name"
  log="$build/findings/$name.log"
  rm -rf "$corpus" "$out"
  mkdir -p "$corpus" "$out"
  cp "$root/tests/fuzz/corpus/$name/"* "$corpus/"
  # -timeout: an input that takes 10 s is a hang. -rss_limit_mb: a target
  # that needs 2 GiB for inputs of a few KiB leaks or does not bound its
  # memory. -max_len 16 KiB leaves room for WAL segments and snapshots.
  status=0
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len=16384 -print_final_stats=1 -artifact_prefix="$out/" \
    "$corpus" >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  [ -n "$runs" ] || runs=0
  found=$(ls "$out" | head -n 1)
  if [ "$status" -eq 0 ] && [ -z "$found" ]; then
    echo "fuzz_$name: $runs runs, 0 crashes"
  else
    findings=$((findings + 1))
    echo "fuzz_$name: $runs runs, 1 crashes"
    if [ -n "$found" ]; then
      echo "  input: $out/$found"
    fi
    echo "  log:   $log"
    grep -m 3 -E 'ERROR|SUMMARY|runtime error' "$log" | sed 's/^/  /' || true
  fi
done
[ "$findings" -eq 0 ]
