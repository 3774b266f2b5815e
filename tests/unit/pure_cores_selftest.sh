#!/bin/sh
# scripts/check-pure-cores.sh can fail: in a scratch tree, each planted
# violation (an impure header, an impure call, a mutable static, a static
# array of mutable pointers) makes it exit 1, and the clean tree passes.
set -eu
script=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/scripts" "$tmp/src/raft" "$tmp/src/sm"
cp "$script" "$tmp/scripts/check-pure-cores.sh"
clean() {
  printf '#include <stdint.h>\n#include "core/log.h"\nstatic const char *const n[] = {"a", 0};\n' >"$tmp/src/raft/a.c"
  printf 'static const uint32_t t[2] = {1, 2};\n' >"$tmp/src/sm/b.c"
}
expect_fail() {
  if sh "$tmp/scripts/check-pure-cores.sh" >/dev/null; then
    echo "FAIL: not caught: $1"
    exit 1
  fi
  echo "ok   caught: $1"
}
clean
sh "$tmp/scripts/check-pure-cores.sh" >/dev/null || { echo "FAIL: clean tree refused"; exit 1; }
echo "ok   clean tree passes"
clean; echo '#include <time.h>' >>"$tmp/src/raft/a.c"; expect_fail "a system header off the list"
clean; echo '#include "storage/wal.h"' >>"$tmp/src/raft/a.c"; expect_fail "a project header off the list"
clean; echo 'int f(void) { return rand(); }' >>"$tmp/src/raft/a.c"; expect_fail "an impure call"
clean; echo 'static int counter;' >>"$tmp/src/sm/b.c"; expect_fail "a mutable static"
clean; echo 'static const char *names[3];' >>"$tmp/src/sm/b.c"; expect_fail "a static array of mutable pointers"
