#!/bin/sh
# Installs the Debian packages sabha needs to build and test, and nothing when
# they are all present already. `make demo` and `make test` call it first so
# that a fresh Debian machine needs no other set-up step. `deps.sh test` adds
# what only the tests need: a headless browser that renders the lab's report
# (chromium) and a font for its text, iproute2, with which the chaos test
# puts nodes in network namespaces to partition them, and Redis's server, whose
# replies the compatibility test compares with sabha's. `deps.sh fuzz` adds
# what `make fuzz` needs: clang, and its runtime libraries, where libFuzzer
# and the sanitizers' runtimes live (clang alone does not pull them in).
# `deps.sh bench` adds what bench/peers/run compares sabha with: etcd (its
# server and etcdctl), Redis's server and wrk, the HTTP load generator.
set -eu

PACKAGES="gcc make cmake libc6-dev pkg-config libuv1-dev libsodium-dev libssl-dev redis-tools python3"
if [ "${1:-}" = test ]; then
  PACKAGES="$PACKAGES chromium fonts-dejavu-core iproute2 curl openssl redis-server"
fi
if [ "${1:-}" = bench ]; then
  PACKAGES="$PACKAGES etcd-server etcd-client redis-server wrk"
fi
if [ "${1:-}" = fuzz ]; then
  PACKAGES="$PACKAGES clang libclang-rt-dev"
fi

missing=""
for p in $PACKAGES; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

echo "sabha: installing missing Debian packages:$missing"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
