#!/bin/bash
# The applications' retry rules are in the log (docs/apps.md, "The rules
# are in the log"): a 3-node cluster with a table of 4 ids kept 10 minutes
# refuses the fifth new id; restarted whole with 64 ids and no window, every
# node replays its log under the rules its entries had (the refused
# transfers stay refused, the money where it was), and the new settings
# take effect for all at the rules entry the new leader proposes.
. "$(dirname "$0")/lib.sh"
start_cluster c 3 raft "$BASE" --set dedup-max=4 --set dedup-window-ms=600000
wait_leader c
P1=$(client_port 1 "$BASE"); P2=$(client_port 2 "$BASE"); P3=$(client_port 3 "$BASE")

# info_apps PORT FIELD: a field of INFO apps.
info_apps() { rcli "$1" INFO apps | tr -d '\r' | sed -n "s/^$2://p"; }

# wait_rules PORT MAX WINDOW: the rules in force there, from the log.
wait_rules() {
  for _ in $(seq 1 100); do
    if [ "$(info_apps "$1" app_rules_from)" = log ] &&
      [ "$(info_apps "$1" app_rules_dedup_max)" = "$2" ] &&
      [ "$(info_apps "$1" app_rules_dedup_window_ms)" = "$3" ]; then
      return 0
    fi
    sleep 0.1
  done
  rcli "$1" INFO apps
  die "node on port $1 has not the rules $2, $3 from the log"
}

log "the leader recorded its settings in the log"
for p in $P1 $P2 $P3; do wait_rules "$p" 4 600000; done

log "four ids fill the table; the fifth is refused"
expect OK "$(rcli "$P1" LEDGER.OPEN a 1000)"
expect OK "$(rcli "$P1" LEDGER.OPEN b 0)"
for i in 1 2 3 4; do
  expect OK "$(rcli "$P2" LEDGER.TRANSFER "t$i" a b 10)"
done
rcli "$P3" LEDGER.TRANSFER t5 a b 10 | grep -q "retry table full" ||
  die "the fifth id was not refused"

log "every node restarted with dedup-max 64 and no window"
"$SABHA" cluster stop --dir "$DIR/c" >/dev/null
for f in "$DIR"/c/node*.conf; do
  sed -i -e 's/^dedup[-_]max *=.*/dedup_max = 64/' \
    -e 's/^dedup[-_]window[-_]ms *=.*/dedup_window_ms = 0/' "$f"
  grep -q '^dedup_max = 64' "$f" && grep -q '^dedup_window_ms = 0' "$f" ||
    { cat "$f"; die "cannot change the settings in $f"; }
done
"$SABHA" cluster start --dir "$DIR/c" >/dev/null || die "restart all"
wait_leader c
for p in $P1 $P2 $P3; do wait_rules "$p" 64 0; done

log "the replay kept every reply: the refused transfer did not apply"
for p in $P1 $P2 $P3; do
  expect 960 "$(rcli "$p" LEDGER.BALANCE a)"
  expect "" "$(rcli "$p" LEDGER.TX t5)"
  expect 64 "$(info_apps "$p" app_dedup_max)"
done
log "under the new rules it applies, once"
expect OK "$(rcli "$P1" LEDGER.TRANSFER t5 a b 10)"
expect OK "$(rcli "$P2" LEDGER.TRANSFER t5 a b 10)"
for p in $P1 $P2 $P3; do
  expect 950 "$(rcli "$p" LEDGER.BALANCE a)"
done
log "ok"
