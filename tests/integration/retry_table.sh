#!/bin/bash
# The applications' retry table under a flood, on a 3-node cluster with a
# table of 8 ids kept at least 10 minutes (docs/apps.md, "The dedup bound
# and window"): once 8 ids fill it, a new id is refused ("retry table
# full") and nothing moves, while a retry of an id in it, at any node, is
# answered as the first time and moves the money once; the same holds after
# every node restarts from its snapshot and log.
. "$(dirname "$0")/lib.sh"
start_cluster c 3 raft "$BASE" --set dedup-max=8 --set dedup-window-ms=600000 \
  --set compact-entries=5
wait_leader c
P1=$(client_port 1 "$BASE"); P2=$(client_port 2 "$BASE"); P3=$(client_port 3 "$BASE")

# is_error REPLY PATTERN: the reply is an error matching PATTERN.
is_error() { printf '%s' "$1" | grep -qE "^ERR .*$2" || die "expected an error like '$2', got '$1'"; }

log "a transfer, then seven junk ids fill the table"
expect OK "$(rcli "$P1" LEDGER.OPEN a 1000)"
expect OK "$(rcli "$P1" LEDGER.OPEN b 0)"
expect OK "$(rcli "$P1" LEDGER.TRANSFER good a b 100)"
for i in 0 1 2 3 4 5 6; do
  is_error "$(rcli "$P2" LEDGER.TRANSFER "junk$i" nobody b 1)" "no such account"
done

log "a new id is refused; the transfer's retry is answered, not applied"
is_error "$(rcli "$P2" LEDGER.TRANSFER junk-more nobody b 1)" \
  "retry table full: 8 ids recorded in the last 600000 ms \(dedup-max, dedup-window-ms\); try again later"
is_error "$(rcli "$P3" LEDGER.TRANSFER next a b 1)" "retry table full"
expect OK "$(rcli "$P3" LEDGER.TRANSFER good a b 100)"
expect "" "$(rcli "$P1" LEDGER.TX next)"
for p in $P1 $P2 $P3; do
  expect 900 "$(rcli "$p" LEDGER.BALANCE a)"
done
rcli "$P1" INFO apps | grep -q '^app_dedup_window_ms:600000' || die "INFO apps has no window"
log "every node counts the two refusals it applied"
for n in 1 2 3; do
  p=$(client_port "$n" "$BASE")
  for _ in $(seq 1 40); do # a follower applies a heartbeat later
    got=$(metric "$(http_port "$n" "$BASE")" sabha_apps_retry_table_full_total)
    [ "$got" = 2 ] && break
    sleep 0.05
  done
  [ "$got" = 2 ] || die "node $n: sabha_apps_retry_table_full_total $got"
  rcli "$p" INFO apps | grep -q '^app_retry_table_full:2' || die "node $n: INFO apps"
done

log "every node restarted: the table and its times come back"
"$SABHA" cluster stop --dir "$DIR/c" >/dev/null
"$SABHA" cluster start --dir "$DIR/c" >/dev/null || die "restart all"
wait_leader c
grep -q "snapshot at [1-9]" "$DIR"/c/node*.log || die "no node started from a snapshot"
is_error "$(rcli "$P1" LEDGER.TRANSFER next a b 1)" "retry table full"
expect OK "$(rcli "$P2" LEDGER.TRANSFER good a b 100)"
for p in $P1 $P2 $P3; do
  expect 900 "$(rcli "$p" LEDGER.BALANCE a)"
done
log "ok"
