#!/bin/sh
# The protocol cores must stay pure (DESIGN.md, "the engine contract"): no
# clock, no randomness from libc, no files, no sockets, no environment. Time
# and a seed come in through the engine API instead. This check fails the build
# when a call slips in; comment lines are ignored.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
dirs=""
for d in src/raft src/paxos src/async src/core; do [ -d "$root/$d" ] && dirs="$dirs $root/$d"; done
[ -n "$dirs" ] || exit 0
pattern='\b(clock_gettime|gettimeofday|time|clock|rand|random|srand|srandom|drand48|getrandom|fopen|open|openat|read|write|pread|pwrite|fsync|fdatasync|socket|connect|accept|send|sendto|recv|recvfrom|sleep|usleep|nanosleep|getenv|printf|fprintf|puts)[[:space:]]*\('
# shellcheck disable=SC2086
hits=$(grep -rnE "$pattern" $dirs --include='*.c' --include='*.h' | grep -vE '^[^:]+:[0-9]+:[[:space:]]*(//|/\*|\*)' || true)
if [ -n "$hits" ]; then
  echo "impure call in a protocol core (pass time and randomness in instead):"
  echo "$hits"
  exit 1
fi
exit 0
