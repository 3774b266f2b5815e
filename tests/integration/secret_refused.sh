#!/bin/bash
# sabhad refuses to start on a secret it cannot trust, or without one where
# strangers can reach it (issue 11): an empty or short secret (an empty one
# used to mean "none" without a word), a secret file others can read, a
# secret on the command line (ps shows it), and a peer port bound off
# loopback without a secret. Each exits 2 before listening, with an error
# that names the setting. `sabha cluster start --secret` takes the same
# bounds.
. "$(dirname "$0")/lib.sh"
P=$((BASE + 200))
ARGS=(--id 1 --peers "1=127.0.0.1:$P" --client-port "$BASE"
      --http-port $((BASE + 100)) --data "$DIR/data")

# refused WHAT PATTERN ARGS...: sabhad exits 2 saying PATTERN.
refused() {
  local what=$1 pattern=$2; shift 2
  local out rc
  out=$(timeout 10 "$SABHAD" "$@" 2>&1); rc=$?
  [ $rc -eq 2 ] || die "$what: exit $rc, not 2: $out"
  echo "$out" | grep -q -- "$pattern" || die "$what: no '$pattern' in: $out"
  log "refused $what: $out"
}

umask 077
printf 'too-short-secret\n' | head -c 15 >"$DIR/short"   # 15 bytes
refused "a 15-byte secret file" "at least 16" "${ARGS[@]}" --secret-file "$DIR/short"
: >"$DIR/empty"
refused "an empty secret file" "0 bytes; a secret needs at least 16" \
  "${ARGS[@]}" --secret-file "$DIR/empty"
printf 'secret = \n' >"$DIR/empty.conf"
refused "an empty secret in a config" "secret: 0 bytes" \
  "${ARGS[@]}" --config "$DIR/empty.conf"
printf 'secret = 0123456789abcdef0123456789\n' >"$DIR/ok.conf"
refused "a secret on the command line" "visible to every user" \
  "${ARGS[@]}" --secret 0123456789abcdef0123456789
echo 0123456789abcdef0123456789 >"$DIR/open"
chmod 640 "$DIR/open"
refused "a secret file the group can read" "chmod 600" \
  "${ARGS[@]}" --secret-file "$DIR/open"
refused "a non-loopback bind without a secret" "secret-file" \
  --id 1 --peers "1=0.0.0.0:$P" --bind 0.0.0.0 --client-port "$BASE" \
  --http-port $((BASE + 100)) --data "$DIR/data"
refused "an IPv6 non-loopback bind without a secret" "is not loopback" \
  --id 1 --peers "1=[::]:$P" --bind :: --client-port "$BASE" \
  --http-port $((BASE + 100)) --data "$DIR/data"

refused "a non-loopback peer-bind without a secret" "peer address 0.0.0.0" \
  --id 1 --peers "1=0.0.0.0:$P" --bind 127.0.0.1 --peer-bind 0.0.0.0 \
  --client-port "$BASE" --http-port $((BASE + 100)) --data "$DIR/data"

log "clients on every address, peers on loopback: no secret needed"
"$SABHAD" --id 1 --peers "1=127.0.0.1:$P" --bind 0.0.0.0 --peer-bind 127.0.0.1 \
  --http-bind 127.0.0.1 --client-port "$BASE" --http-port $((BASE + 100)) \
  --data "$DIR/data-split" >"$DIR/split.log" 2>&1 &
PID=$!
for i in $(seq 1 50); do
  http_get $((BASE + 100)) /status | grep -q '"role"' && break
  sleep 0.1
done
http_get $((BASE + 100)) /status | grep -q '"role"' ||
  { kill $PID; cat "$DIR/split.log"; die "split binds did not start"; }
grep -q "peers on 127.0.0.1:$P, clients on 0.0.0.0:$BASE, http on 127.0.0.1:" \
  "$DIR/split.log" || { cat "$DIR/split.log"; die "the listeners are not where they were told"; }
kill -TERM $PID; wait $PID || die "sabhad exited $? after SIGTERM"

log "the same node with a good secret file, off loopback, starts"
chmod 600 "$DIR/open"
"$SABHAD" --id 1 --peers "1=0.0.0.0:$P" --bind 0.0.0.0 --client-port "$BASE" \
  --http-port $((BASE + 100)) --data "$DIR/data" --secret-file "$DIR/open" \
  >"$DIR/good.log" 2>&1 &
PID=$!
for i in $(seq 1 50); do
  http_get $((BASE + 100)) /status | grep -q '"role"' && break
  sleep 0.1
done
http_get $((BASE + 100)) /status | grep -q '"role"' ||
  { kill $PID; cat "$DIR/good.log"; die "a good config did not start"; }
kill -TERM $PID; wait $PID || die "sabhad exited $? after SIGTERM"
log "and with a config holding a long enough secret, on loopback"
"$SABHAD" "${ARGS[@]}" --config "$DIR/ok.conf" >"$DIR/ok.log" 2>&1 &
PID=$!
for i in $(seq 1 50); do
  http_get $((BASE + 100)) /status | grep -q '"role"' && break
  sleep 0.1
done
http_get $((BASE + 100)) /status | grep -q '"role"' ||
  { kill $PID; cat "$DIR/ok.log"; die "a config secret did not start"; }
kill -TERM $PID; wait $PID || die "sabhad exited $? after SIGTERM"

log "sabha cluster start --secret takes the same bounds"
out=$("$SABHA" cluster start --dir "$DIR/c" --nodes 1 --base-port "$BASE" --secret short 2>&1) &&
  die "cluster start took a 5-byte --secret"
echo "$out" | grep -q "16..256 bytes" || die "no word of the bounds: $out"
[ -e "$DIR/c/node1.conf" ] && die "cluster start wrote configs for a refused secret"
log "ok"
