#!/bin/bash
# sabha's RESP commands answer as Redis 7's do: every case of
# redis_compat.cases goes, through redis-cli on one connection, to a real
# redis-server and to a 3-node Raft cluster (each case to another node, so
# leader and followers both serve), and the two transcripts must be equal.
# Writes go through consensus here, so this is the cluster users run, not
# the store alone. A case marked `differs "phrase"` is a difference sabha
# keeps on purpose: the phrase must be in docs/api.md, which explains it,
# and the replies must still differ (else the note is stale). Skipped
# (CTest's code 77) only when redis-server is not installed (scripts/deps.sh
# test installs it).
if ! command -v redis-server >/dev/null 2>&1; then
  echo "[redis_compat] SKIP: no redis-server (Debian redis-server; scripts/deps.sh test)"
  exit 77
fi
. "$(dirname "$0")/lib.sh"
CASES=${4:-$(dirname "$0")/redis_compat.cases}
API_DOC=$(dirname "$0")/../../docs/api.md
RP=$((BASE + 240)) # the cluster takes BASE..BASE+202
RPID=""
# Stop our redis-server (by its PID) before lib.sh's cleanup, keeping the
# exit status for it.
trap 'rc=$?; [ -n "$RPID" ] && kill "$RPID" 2>/dev/null; (exit $rc); cleanup' EXIT

log "redis-server on 127.0.0.1:$RP, no persistence"
redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$DIR" --logfile "$DIR/redis.log" >/dev/null 2>&1 &
RPID=$!
start_cluster c 3 raft "$BASE"
for i in $(seq 1 50); do [ "$(rcli "$RP" PING 2>/dev/null)" = PONG ] && break; sleep 0.1; done
expect PONG "$(rcli "$RP" PING)"
wait_leader c

# same A B TOL SORT: the transcripts are equal; with TOL > 0, integers that
# end a line may differ by up to TOL (a time left, counting down on each
# side); with SORT, the lines are compared as sets, array numbering aside
# (key order: Redis's is its hash table's, sabha's is byte order).
same() {
  local a=$1 b=$2 tol=$3 sort=$4
  if [ "$sort" = 1 ]; then
    a=$(sed -E 's/^ *([0-9]+\) )*//' <<<"$a" | sort)
    b=$(sed -E 's/^ *([0-9]+\) )*//' <<<"$b" | sort)
  fi
  [ "$a" = "$b" ] && return 0
  [ "$tol" -gt 0 ] || return 1
  awk -v tol="$tol" 'NR == FNR { a[FNR] = $0; na = FNR; next }
    { b[FNR] = $0; nb = FNR }
    END {
      if (na != nb) exit 1
      for (i = 1; i <= na; i++) {
        if (a[i] == b[i]) continue
        x = a[i]; y = b[i]
        if (!match(x, /-?[0-9]+$/)) exit 1
        nx = substr(x, RSTART) + 0; px = substr(x, 1, RSTART - 1)
        if (!match(y, /-?[0-9]+$/)) exit 1
        ny = substr(y, RSTART) + 0; py = substr(y, 1, RSTART - 1)
        d = nx - ny; if (d < 0) d = -d
        if (px != py || d > tol) exit 1
      }
    }' <(echo "$a") <(echo "$b")
}

n_cases=0; n_differs=0; failed=""
# run_case NAME OPTS: sends $cmds to both, compares.
run_case() {
  local name=$1 opts=$2 tol=0 sort=0 differs="" node port ra rb
  [ -n "$name" ] || return 0
  case " $opts " in *" sort "*) sort=1 ;; esac
  tol=$(sed -nE 's/.*~([0-9]+).*/\1/p' <<<"$opts"); tol=${tol:-0}
  differs=$(sed -nE 's/.*differs "([^"]*)".*/\1/p' <<<"$opts")
  n_cases=$((n_cases + 1))
  node=$(( (n_cases - 1) % 3 + 1 )); port=$(client_port "$node" "$BASE")
  ra=$(printf '%s\n' "$cmds" | timeout 20 redis-cli -p "$RP" --no-raw 2>&1)
  rb=$(printf '%s\n' "$cmds" | timeout 20 redis-cli -p "$port" --no-raw 2>&1)
  if [ -n "$differs" ]; then
    n_differs=$((n_differs + 1))
    if ! tr -s ' \n' '  ' <"$API_DOC" | grep -qF -- "$differs"; then
      log "case $name: docs/api.md does not say \"$differs\""
      failed="$failed $name"
    elif same "$ra" "$rb" "$tol" "$sort"; then
      log "case $name: documented as a difference, but sabha now answers as Redis: drop the note"
      failed="$failed $name"
    fi
    return 0
  fi
  if ! same "$ra" "$rb" "$tol" "$sort"; then
    log "case $name differs (node $node): --- redis +++ sabha"
    diff -u --label redis <(echo "$ra") --label sabha <(echo "$rb") | tail -n +3
    failed="$failed $name"
  fi
}

log "cases from $CASES"
name=""; opts=""; cmds=""
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in
  "== "*)
    run_case "$name" "$opts"
    read -r name opts <<<"${line#== }"
    cmds="" ;;
  "#"* | "") ;;
  *) cmds="${cmds:+$cmds
}$line" ;;
  esac
done <"$CASES"
run_case "$name" "$opts"

log "$n_cases cases, $n_differs documented differences"
[ -z "$failed" ] || die "cases that differ from Redis:$failed"
log "ok"
