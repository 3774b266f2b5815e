#!/bin/bash
# The applications (docs/apps.md) through redis-cli on a 3-node cluster:
# the ledger's exactly-once transfers (a retry, also at another node, is
# answered as the first time and moves the money once), seat booking,
# locks with fencing tokens and the order workflow; then exactly-once
# across a leader's SIGKILL, and app state kept through snapshots and a
# restart of every node. Engine: $4.
. "$(dirname "$0")/lib.sh"
PROTO=${4:?protocol}
# Small compaction threshold: snapshots (SND2, with the app state) happen.
start_cluster c 3 "$PROTO" "$BASE" --set compact-entries=40
wait_leader c
L=$(leader_node c); F=$(follower_node c)
PL=$(client_port "$L" "$BASE"); PF=$(client_port "$F" "$BASE")
P1=$(client_port 1 "$BASE"); P2=$(client_port 2 "$BASE"); P3=$(client_port 3 "$BASE")

# is_error REPLY PATTERN: the reply is an error matching PATTERN (any case).
is_error() { printf '%s' "$1" | grep -qiE "^(ERR|[A-Z]+ ).*$2" || die "expected an error like '$2', got '$1'"; }

log "ledger: open, transfer, retry at the same and at another node"
expect OK "$(rcli "$PF" LEDGER.OPEN alice 100000)"
expect OK "$(rcli "$PL" ledger.open bob 5000)"          # any case
expect OK "$(rcli "$PF" LEDGER.TRANSFER tx1 alice bob 2500)"
expect OK "$(rcli "$PF" LEDGER.TRANSFER tx1 alice bob 2500)"
expect OK "$(rcli "$PL" LEDGER.TRANSFER tx1 alice bob 2500)"
for p in $P1 $P2 $P3; do
  expect 97500 "$(rcli "$p" LEDGER.BALANCE alice)"
  expect 7500 "$(rcli "$p" LEDGER.BALANCE bob)"
done
is_error "$(rcli "$PF" LEDGER.TRANSFER tx2 bob alice 999999)" "insufficient"
expect 7500 "$(rcli "$PL" LEDGER.BALANCE bob)"
is_error "$(rcli "$PL" LEDGER.TRANSFER tx1 alice bob 1)" "."   # id reused
expect "$(printf '2\n105000')" "$(rcli "$PF" LEDGER.AUDIT)"
[ -n "$(rcli "$PF" LEDGER.TX tx1)" ] || die "LEDGER.TX tx1 is empty"
is_error "$(rcli "$PF" LEDGER.TRANSFER tx3 alice)" "wrong number of arguments for 'ledger.transfer' command"
is_error "$(rcli "$PF" LEDGER.OPEN "$(printf 'x%.0s' $(seq 1 65))" 1)" "at most 64"

log "seats: add, book, double booking refused, retry returns the same PNR"
expect 3 "$(rcli "$PF" SEATS.ADD 12951 2025-01-10 S1 S2 S3)"
PNR=$(rcli "$PF" SEATS.BOOK req1 12951 2025-01-10 S1 asha)
[ -n "$PNR" ] || die "no PNR"
is_error "$(rcli "$PL" SEATS.BOOK req2 12951 2025-01-10 S1 ravi)" "."
expect "$PNR" "$(rcli "$PL" SEATS.BOOK req1 12951 2025-01-10 S1 asha)"
expect 2 "$(rcli "$PF" SEATS.FREE 12951 2025-01-10)"
rcli "$PF" SEATS.PNR "$PNR" | grep -q '^S1$' || die "SEATS.PNR $PNR"
ANY=$(rcli "$PF" SEATS.ANY req3 12951 2025-01-10 meera)
expect "$ANY" "$(rcli "$PL" SEATS.ANY req3 12951 2025-01-10 meera)"
expect 1 "$(rcli "$PF" SEATS.FREE 12951 2025-01-10)"

log "locks: fencing tokens grow; a stale token's write is refused"
T1=$(rcli "$PF" LOCK.ACQUIRE db-migrate w1 30000)
is_error "$(rcli "$PF" LOCK.ACQUIRE db-migrate w2 30000)" "."
expect OK "$(rcli "$PF" FENCED.SET cfg v1 db-migrate "$T1")"
expect OK "$(rcli "$PL" LOCK.RELEASE db-migrate w1 "$T1")"
T2=$(rcli "$PF" LOCK.ACQUIRE db-migrate w2 30000)
[ "$T2" -gt "$T1" ] 2>/dev/null || die "token $T2 after $T1"
is_error "$(rcli "$PF" FENCED.SET cfg late db-migrate "$T1")" "stale"
expect OK "$(rcli "$PF" FENCED.SET cfg v2 db-migrate "$T2")"
expect v2 "$(rcli "$PL" FENCED.GET cfg)"
rcli "$PF" LOCK.GET db-migrate | head -1 | grep -q '^w2$' || die "LOCK.GET"

log "orders: the workflow, an invalid transition refused"
expect OK "$(rcli "$PF" ORDER.CREATE o1 cust7 49900)"
is_error "$(rcli "$PF" ORDER.ADVANCE o1 SHIPPED)" "transition"
expect OK "$(rcli "$PL" ORDER.ADVANCE o1 PAYMENT_CONFIRMED)"
rcli "$PF" ORDER.GET o1 | head -1 | grep -qi 'payment' || die "ORDER.GET o1"
expect OK "$(rcli "$PF" ORDER.CANCEL o1)"

log "exactly once across the leader's SIGKILL"
expect OK "$(rcli "$PF" LEDGER.OPEN carol 1000)"
rcli "$PL" LEDGER.TRANSFER txk alice carol 700 >/dev/null 2>&1 &
"$SABHA" cluster kill leader --dir "$DIR/c" >/dev/null || die "cluster kill leader"
wait
S=$(follower_node c); [ -n "$S" ] || S=$(leader_node c)
PS=$(client_port "$S" "$BASE")
r=""
for i in $(seq 1 100); do
  r=$(rcli "$PS" LEDGER.TRANSFER txk alice carol 700 2>/dev/null)
  [ "$r" = OK ] && break
  sleep 0.2
done
expect OK "$r"
expect 96800 "$(rcli "$PS" LEDGER.BALANCE alice)"
expect 1700 "$(rcli "$PS" LEDGER.BALANCE carol)"

log "more commands than the compaction threshold, then the old leader back"
for i in $(seq 1 60); do echo "LEDGER.TRANSFER pad$i alice bob 1"; done | rcli "$PS" | grep -vc '^OK$' | grep -q '^0$' || die "padding transfers"
NL=$(leader_node c)
[ "$(metric "$(http_port "$NL" "$BASE")" sabha_snapshots_taken_total)" -ge 1 ] || die "the leader took no snapshot"
"$SABHA" cluster start --dir "$DIR/c" >/dev/null || die "restart node $L"
PK=$(client_port "$L" "$BASE")
for i in $(seq 1 100); do
  [ "$(printf 'SABHA.STALE on\nLEDGER.BALANCE alice\n' | rcli "$PK" 2>/dev/null | tail -1)" = 96740 ] && break
  sleep 0.1
done
expect 96740 "$(printf 'SABHA.STALE on\nLEDGER.BALANCE alice\n' | rcli "$PK" | tail -1)"

log "every node restarted: app state and dedup ids come back from snapshot + log"
"$SABHA" cluster stop --dir "$DIR/c" >/dev/null
"$SABHA" cluster start --dir "$DIR/c" >/dev/null || die "restart all"
wait_leader c
grep -q "snapshot at [1-9]" "$DIR/c/node$L.log" || die "node $L did not start from a snapshot"
expect OK "$(rcli "$P1" LEDGER.TRANSFER txk alice carol 700)"
expect OK "$(rcli "$P2" LEDGER.TRANSFER tx1 alice bob 2500)"
for p in $P1 $P2 $P3; do
  expect 96740 "$(rcli "$p" LEDGER.BALANCE alice)"
  expect 1700 "$(rcli "$p" LEDGER.BALANCE carol)"
done
expect "$(printf '3\n106000')" "$(rcli "$P3" LEDGER.AUDIT)"
expect "$PNR" "$(rcli "$P3" SEATS.BOOK req1 12951 2025-01-10 S1 asha)"
expect v2 "$(rcli "$P2" FENCED.GET cfg)"
rcli "$P1" INFO apps | grep -q '^app_accounts:3' || die "INFO apps"
log "ok"
