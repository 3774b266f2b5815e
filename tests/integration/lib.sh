# Shared by the integration tests: start, probe and stop local sabha clusters
# of real sabhad processes on 127.0.0.1. Sourced by each test script, which
# is run by CTest as:  <test>.sh SABHA_BINARY SABHAD_BINARY BASE_PORT
#
# Every test uses its own port range (BASE_PORT .. BASE_PORT+249, inside
# 16000-32549) and its own directory, and stops only the processes it
# started: `sabha cluster stop` signals the pids in its pid files, which it
# checks against /proc first.
set -u
SABHA=${1:?usage: test.sh SABHA SABHAD BASE_PORT}
SABHAD=${2:?}
BASE=${3:?}
export SABHAD
T0=$(date +%s)
TEST=$(basename "$0" .sh)
DIR=$(mktemp -d "/tmp/sabha-it-$TEST-XXXXXX")
CLUSTERS=""

log() { echo "[$TEST +$(( $(date +%s) - T0 ))s] $*"; }

cleanup() {
  local rc=$?
  for d in $CLUSTERS; do "$SABHA" cluster stop --dir "$d" >/dev/null 2>&1; done
  # In the sanitizer build, a node's report (at the error, or of leaks at
  # exit) lands in its log: any report fails the test.
  if grep -l -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$DIR"/*/node*.log 2>/dev/null; then
    echo "[$TEST] FAIL: a sanitizer report in the logs above"
    grep -h -A 30 -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$DIR"/*/node*.log | head -60
    rc=1
  fi
  if [ $rc -eq 0 ]; then rm -rf "$DIR"; else
    echo "--- logs kept in $DIR"
    for f in "$DIR"/*/node*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 15 "$f"; }; done
  fi
  exit $rc
}
trap cleanup EXIT

die() { log "FAIL: $*"; exit 1; }

# start_cluster NAME NODES PROTOCOL BASE [extra `sabha cluster start` args]
start_cluster() {
  local name=$1 nodes=$2 proto=$3 base=$4; shift 4
  local d="$DIR/$name"
  CLUSTERS="$CLUSTERS $d"
  "$SABHA" cluster start --dir "$d" --nodes "$nodes" --protocol "$proto" \
    --base-port "$base" "$@" >"$DIR/$name.start" 2>&1 ||
    { cat "$DIR/$name.start"; die "cluster start failed"; }
}

status() { "$SABHA" cluster status --dir "$DIR/$1"; }
client_port() { echo $(( $2 + $1 - 1 )); }     # client_port NODE BASE
http_port() { echo $(( $2 + 100 + $1 - 1 )); }  # http_port NODE BASE

# leader_node NAME: the id of the leader, or nothing.
leader_node() { status "$1" | sed -n 's/^node=\([0-9]*\) role=leader .*/\1/p' | head -1; }

# wait_leader NAME [SECONDS]: waits until some node is leader.
wait_leader() {
  local i
  for i in $(seq 1 $(( ${2:-15} * 10 ))); do
    [ -n "$(leader_node "$1")" ] && return 0
    sleep 0.1
  done
  status "$1"
  die "no leader in $1 after ${2:-15}s"
}

# a follower of cluster NAME (any node that is up and not leader).
follower_node() { status "$1" | grep -v 'role=leader' | grep -v 'role=down' | grep -v 'role=removed' | sed -n 's/^node=\([0-9]*\) .*/\1/p' | head -1; }

rcli() { timeout 10 redis-cli -p "$@"; }

# raw PORT: stdin to the port as it is, then what comes back until it closes
# or is quiet for a second.
raw() { timeout 10 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(sys.stdin.buffer.read())
d = b""
try:
    while True:
        c = s.recv(65536)
        if not c:
            break
        d += c
except OSError:
    pass
sys.stdout.write(d.decode())' "$1"; }

# expect WHAT GOT: fails the test unless equal.
expect() { [ "$1" = "$2" ] || die "expected '$1', got '$2'"; }

# http_get PORT PATH: the body of a GET (bash's /dev/tcp: no curl needed).
http_get() {
  timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 || exit 1
    printf "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" "$1" >&3
    sed "1,/^\r\{0,1\}$/d" <&3' "$1" "$2" 2>/dev/null
}

# metric PORT NAME: a metric's value from /metrics (first sample).
metric() { http_get "$1" /metrics | grep -E "^$2( |\{)" | head -1 | awk '{print $NF}'; }

# verify_keys FILE PORT...: every "key value" line of FILE reads back as
# written through each port. Prints the number missing.
verify_keys() {
  local file=$1; shift
  local bad=0 port
  for port in "$@"; do
    # One redis-cli per port: GET every key, compare line by line.
    local got
    got=$(cut -d' ' -f1 "$file" | sed 's/^/GET /' | timeout 60 redis-cli -p "$port" 2>&1)
    bad=$(( bad + $(paste -d' ' <(cut -d' ' -f2 "$file") <(echo "$got") | awk '$1 != $2' | wc -l) ))
  done
  echo $bad
}

# writer PORT PREFIX ACKFILE: SETs PREFIX<i> until killed, recording each
# acknowledged one as "key value" in ACKFILE.
writer() {
  local port=$1 prefix=$2 ack=$3 i=0 r
  : >"$ack"
  while true; do
    i=$((i + 1))
    r=$(timeout 5 redis-cli -p "$port" SET "$prefix$i" "v$i" 2>/dev/null)
    [ "$r" = OK ] && echo "$prefix$i v$i" >>"$ack"
  done
}
