#!/bin/bash
# `sabha bench` on a real 3-node cluster: every workload for a second, with
# pipelining, over connections spread across the nodes (followers forward),
# finds every invariant holding; --json is one JSON object; and each
# invariant check fails (exit 1, the line that says so) when --inject
# corrupts what it reads, so that none of them can pass by construction.
. "$(dirname "$0")/lib.sh"
start_cluster c 3 raft "$BASE"
wait_leader c
B=("$SABHA" bench --dir "$DIR/c" --connections 6 --pipeline 2 --keys 1000
   --seats 20 --locks 4)

log "every workload for a second"
"${B[@]}" --workload all --seconds 1 >"$DIR/all.out" 2>&1
rc=$?
grep -E '_(ops_per_s|latency_ms_p99|invariants):' "$DIR/all.out"
[ $rc = 0 ] || { cat "$DIR/all.out"; die "sabha bench exited $rc"; }
expect "invariants: ok" "$(grep '^invariants:' "$DIR/all.out")"
for w in set get ledger seats locks orders; do
  expect "${w}_invariants: ok" "$(grep "^${w}_invariants:" "$DIR/all.out")"
  expect "${w}_failed: 0" "$(grep "^${w}_failed:" "$DIR/all.out")"
  ok=$(sed -n "s/^${w}_ok: //p" "$DIR/all.out")
  [ "${ok:-0}" -gt 0 ] || die "$w: no request succeeded"
done
expect "ledger_money_conserved: yes" "$(grep '^ledger_money_conserved:' "$DIR/all.out")"
expect "seats_sold_twice: 0" "$(grep '^seats_sold_twice:' "$DIR/all.out")"
expect "locks_token_order_violations: 0" "$(grep '^locks_token_order_violations:' "$DIR/all.out")"

log "--json, bounded by --count"
"${B[@]}" --workload ledger --count 200 --json >"$DIR/json.out" 2>&1 ||
  { cat "$DIR/json.out"; die "sabha bench --json failed"; }
python3 -c 'import json,sys; d=json.load(open(sys.argv[1]));
r=d["runs"][0]; assert d["invariants_ok"] and r["requests"]==200, d;
assert d["machine"]["cores"]>0 and d["commit"], d' "$DIR/json.out" ||
  die "bad JSON: $(head -c 600 "$DIR/json.out")"

log "each check catches a corrupted read"
for case in "lost-paisa ledger ledger_money_conserved: no" \
            "double-booking seats seats_sold_twice: 1" \
            "token-regress locks locks_token_order_violations: 1" \
            "order-regress orders orders_behind_acks: 1"; do
  set -- $case
  "${B[@]}" --workload "$2" --seconds 0.5 --inject "$1" >"$DIR/inject.out" 2>&1
  rc=$?
  [ $rc = 1 ] || { cat "$DIR/inject.out"; die "--inject $1: exit $rc, not 1"; }
  line="$3 $4"
  grep -qx "$line" "$DIR/inject.out" || { cat "$DIR/inject.out"; die "--inject $1: no '$line'"; }
  expect "invariants: broken" "$(grep '^invariants:' "$DIR/inject.out")"
done
log "ok"
