#!/bin/sh
# `sabha check --history FILE` judges a history recorded elsewhere: one from
# a passing simulation is linearizable (exit 0), one from a run with a
# stale-read bug is not (exit 1, with why), a file that is not a history
# exits 3, and a missing flag exits 2.
# Usage: check_cmd.sh SABHA OUTDIR
set -eu
bin=$1
out=$2
mkdir -p "$out"
fail() { echo "FAIL: $*"; exit 1; }

"$bin" sim --protocol raft --seed 3 --ops 300 --history "$out/good.jsonl" >/dev/null
"$bin" check --history "$out/good.jsonl" >"$out/good.out" ||
  fail "a passing run's history is not linearizable: $(cat "$out/good.out")"
grep -q '^linearizable: yes$' "$out/good.out" || fail "no 'linearizable: yes'"
grep -q '^ops: [1-9]' "$out/good.out" || fail "no ops line"

rc=0
"$bin" sim --protocol raft --seeds 1..20 --ops 300 --bug stale-read \
  --history "$out/bad.jsonl" >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "the stale-read run did not fail (exit $rc)"
rc=0
"$bin" check --history "$out/bad.jsonl" >"$out/bad.out" || rc=$?
[ "$rc" -eq 1 ] || fail "a stale read passed the check (exit $rc)"
grep -q '^linearizable: no$' "$out/bad.out" || fail "no 'linearizable: no'"
grep -q '^why: ' "$out/bad.out" || fail "no why line"

printf '{"client":1,"op":"fly"}\n' >"$out/junk.jsonl"
rc=0
"$bin" check --history "$out/junk.jsonl" >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 3 ] || fail "a file that is not a history exited $rc, not 3"
rc=0
"$bin" check >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "no --history exited $rc, not 2"
echo ok
