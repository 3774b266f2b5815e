#!/bin/sh
# Shows that the trace framework can fail, and that a rewrite repairs:
#   1. a file with wrong expected outputs fails (status 1) with a readable
#      diff naming the file, the command's line, and each differing line;
#   2. --rewrite turns it into exactly the right file, which then passes;
#   3. a script error (an unknown command) fails with status 2;
#   4. the host's contract check fires on a disk that loses writes, and
#      such a file fails even when rewritten.
# Usage: selftest.sh TRACE_RUN SELFTEST_DIR
set -u
run=$1
dir=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "selftest: $*"; exit 1; }

"$run" "$dir/right.trace" >/dev/null 2>&1 || fail "right.trace does not pass"

cp "$dir/wrong.trace" "$tmp/wrong.trace"
"$run" "$tmp/wrong.trace" >"$tmp/out" 2>"$tmp/err"
status=$?
cat "$tmp/err"
[ "$status" -eq 1 ] || fail "wrong.trace: status $status, want 1"
grep -q "wrong.trace:10: output of 'deliver type=vote' differs" "$tmp/err" ||
  fail "no report of the deliver block"
grep -q "^  +   n3: follower term=1 leader=- commit=0\$" "$tmp/err" ||
  fail "the missing line is not shown as added"
grep -q "^  - n3 -> n1 vote-resp term=1 reject\$" "$tmp/err" ||
  fail "the wrong line is not shown as expected"
grep -q "^  + n3 -> n1 vote-resp term=1 granted\$" "$tmp/err" ||
  fail "the right line is not shown as actual"
grep -q "^FAIL " "$tmp/out" || fail "no FAIL line"

SABHA_TRACE_REWRITE=1 "$run" "$tmp/wrong.trace" >/dev/null 2>&1 ||
  fail "the rewrite failed"
tail -n +2 "$tmp/wrong.trace" >"$tmp/got"
tail -n +2 "$dir/right.trace" >"$tmp/want"
cmp -s "$tmp/got" "$tmp/want" || {
  diff "$tmp/want" "$tmp/got"
  fail "the rewritten file is not the right one"
}
"$run" "$tmp/wrong.trace" >/dev/null 2>&1 || fail "the rewritten file fails"

"$run" "$dir/bad_command.trace" >/dev/null 2>"$tmp/err"
status=$?
[ "$status" -eq 2 ] || fail "bad_command.trace: status $status, want 2"
grep -q "bad_command.trace:6: campaing 1: unknown command 'campaing'" \
  "$tmp/err" || fail "the script error is not named"
# 4. The contract checker fires, and a rewrite cannot make it pass.
cp "$dir/lost_writes.trace" "$tmp/lost.trace"
"$run" --rewrite "$tmp/lost.trace" >/dev/null 2>"$tmp/err"
status=$?
[ "$status" -eq 1 ] || fail "lost_writes.trace: status $status, want 1"
grep -q "^+[0-9]*ms !! contract: n1: applied 1 before persisting it\$" \
  "$tmp/lost.trace" || fail "no contract line in the output"
grep -q "broke its contract" "$tmp/err" || fail "no contract failure reported"
echo "selftest: ok"
