#!/bin/sh
# Two checks on every build, both about what code may depend on.
#
# 1. The protocol cores stay pure (DESIGN.md, "the engine contract"): the
#    files of src/raft, src/paxos, src/async and src/core include only the
#    headers on the allow-list below (the C library's pure parts and the
#    cores' own headers), so no clock, socket, file, thread or libuv can be
#    reached from them; and they call none of the impure C functions those
#    headers still declare (printf, rand, time...). Time and a seed come in
#    through the engine API instead.
# 2. No mutable statics anywhere in src/ but the programs' main files: a
#    process runs many engines, runtimes and simulations at once (the lab
#    runs them on threads), so a static that is written is state they race
#    on. A static must be const all the way down (`static const char *const
#    names[]`, not `static const char *names[]`).
#
# Comment lines are ignored. Prints what breaks a rule and exits 1.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
status=0

cores=""
for d in src/raft src/paxos src/async src/core; do [ -d "$d" ] && cores="$cores $d"; done

# ---- 1. includes and calls of the cores -----------------------------------
system='^<(assert|limits|stdarg|stdbool|stddef|stdint|stdio|stdlib|string|inttypes)\.h>$'
project='^"((sabha|core|raft|paxos|async)/)?[a-z_]+\.h"$'
# shellcheck disable=SC2086
includes=$(grep -rnE '^[[:space:]]*#[[:space:]]*include' $cores --include='*.c' --include='*.h' || true)
bad=$(echo "$includes" | while IFS= read -r line; do
  [ -n "$line" ] || continue
  name=$(echo "$line" | sed -E 's/.*#[[:space:]]*include[[:space:]]*([<"][^>"]+[>"]).*/\1/')
  echo "$name" | grep -qE "$system|$project" || echo "$line"
done)
if [ -n "$bad" ]; then
  echo "a protocol core includes a header outside its allow-list (scripts/check-pure-cores.sh):"
  echo "$bad"
  status=1
fi
pattern='\b(clock_gettime|gettimeofday|time|clock|rand|random|srand|srandom|drand48|getrandom|fopen|freopen|open|openat|read|write|pread|pwrite|fsync|fdatasync|socket|connect|accept|send|sendto|recv|recvfrom|sleep|usleep|nanosleep|getenv|system|exit|abort|printf|fprintf|puts|fputs|fwrite|perror)[[:space:]]*\('
# shellcheck disable=SC2086
hits=$(grep -rnE "$pattern" $cores --include='*.c' --include='*.h' | grep -vE '^[^:]+:[0-9]+:[[:space:]]*(//|/\*|\*)' || true)
if [ -n "$hits" ]; then
  echo "impure call in a protocol core (pass time and randomness in instead):"
  echo "$hits"
  status=1
fi

# ---- 2. mutable statics -----------------------------------------------------
# A declaration line: `static`, no parenthesis (not a function), and an `=`,
# `;` or `[` (not a return type alone on its line). Mutable unless `const`
# applies to the object: no const at all, or a pointer not itself const.
statics=$(grep -rnE '^[[:space:]]*static[[:space:]][^(]*[=;[]' src --include='*.c' --include='*.h' |
  grep -vE '_main\.c:|^src/cli/' |
  grep -vE '^[^:]+:[0-9]+:[[:space:]]*(//|/\*|\*)' || true)
mutable=$(echo "$statics" | while IFS= read -r line; do
  [ -n "$line" ] || continue
  decl=$(echo "$line" | sed -E 's/^[^:]+:[0-9]+://; s/=.*//')
  if ! echo "$decl" | grep -qE '\bconst\b'; then
    echo "$line"
  elif echo "$decl" | grep -q '\*' && ! echo "$decl" | grep -qE '\*[[:space:]]*const\b'; then
    echo "$line"
  fi
done)
if [ -n "$mutable" ]; then
  echo "a mutable static (make it const all the way down, or state in a struct):"
  echo "$mutable"
  status=1
fi
exit $status
