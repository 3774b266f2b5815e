#!/bin/sh
# Bad command lines exit 2 with a message on stderr and print nothing on
# stdout; help exits 0 and lists every flag. Usage: usage_errors.sh SABHA
set -u
bin=$1
status=0
expect_usage_error() {
  out=$("$@" 2>/tmp/sabha_usage_err.$$)
  rc=$?
  err=$(cat /tmp/sabha_usage_err.$$)
  rm -f /tmp/sabha_usage_err.$$
  if [ "$rc" -ne 2 ] || [ -z "$err" ] || [ -n "$out" ]; then
    echo "FAIL: '$*' exited $rc (stderr: '$err', stdout: '$out'), expected 2"
    status=1
  else
    echo "ok: '$*' -> 2: $(echo "$err" | head -1)"
  fi
}
expect_usage_error "$bin"
expect_usage_error "$bin" bogus
expect_usage_error "$bin" sim --bogus
expect_usage_error "$bin" sim --nodes 0
expect_usage_error "$bin" sim --nodes 17
expect_usage_error "$bin" sim --nodes abc
expect_usage_error "$bin" sim --groups 0
expect_usage_error "$bin" sim --groups 65
expect_usage_error "$bin" sim --groups x
expect_usage_error "$bin" sim --groups 2 --faults all,membership
expect_usage_error "$bin" sim --groups 2 --workload ledger
expect_usage_error "$bin" sim --nodes
expect_usage_error "$bin" sim --ops 0
expect_usage_error "$bin" sim --ops -5
expect_usage_error "$bin" sim --clients 0
expect_usage_error "$bin" sim --seed x
expect_usage_error "$bin" sim --seeds 5..1
expect_usage_error "$bin" sim --protocol paxos --faults all,membership
expect_usage_error "$bin" sim --seeds 5
expect_usage_error "$bin" sim --seeds ..5
expect_usage_error "$bin" sim --seed 1 --seeds 1..2
expect_usage_error "$bin" sim --faults bogus
expect_usage_error "$bin" sim --faults partition,,crash
expect_usage_error "$bin" sim --faults ""
expect_usage_error "$bin" sim --bug bogus
expect_usage_error "$bin" sim --protocol nope
expect_usage_error "$bin" sim --json
for args in "--help" "help" "help sim" "sim --help"; do
  # shellcheck disable=SC2086
  out=$("$bin" $args 2>&1)
  rc=$?
  if [ "$rc" -ne 0 ] || [ -z "$out" ]; then
    echo "FAIL: 'sabha $args' exited $rc"
    status=1
  fi
done
help=$("$bin" sim --help)
for flag in --protocol --nodes --seed --seeds --ops --clients --faults --bug \
  --history --json --help; do
  if ! echo "$help" | grep -q -- "$flag"; then
    echo "FAIL: sabha sim --help does not mention $flag"
    status=1
  fi
done
exit $status
