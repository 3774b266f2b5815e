#!/bin/sh
# Classic Paxos without a leader (Paxos Made Simple §2.4): with backoff off,
# five proposers pre-empt each other and throughput collapses while ballots
# pile up (the clients' attempts time out and fail, and the run cannot finish
# its operations); with backoff on, the same run commits every operation.
# Both with every fsync on the disk thread (--fsync thread): an fsync on the
# loop stalls its node for the disk's 1-3 ms at random, a backoff of its
# own that lets a proposer through now and then, which is not what this
# shows.
# Usage: livelock.sh SABHA
set -eu
bin=$1
kv() { echo "$2" | sed -n "s/^$1: //p"; }
off=$("$bin" sim --protocol paxos --nodes 5 --clients 5 --faults none \
  --fsync thread --backoff off 2>/dev/null) || true
on=$("$bin" sim --protocol paxos --nodes 5 --clients 5 --faults none \
  --fsync thread --backoff on 2>/dev/null)
ok_off=$(kv ops_ok "$off"); ballots_off=$(kv ballots_burned "$off")
ok_on=$(kv ops_ok "$on"); ballots_on=$(kv ballots_burned "$on")
tp_off=$(kv throughput_ops_per_s "$off"); tp_on=$(kv throughput_ops_per_s "$on")
echo "backoff off: ops_ok=$ok_off ballots_burned=$ballots_off ops/s=$tp_off"
echo "backoff on:  ops_ok=$ok_on ballots_burned=$ballots_on ops/s=$tp_on"
# Off: the run does not finish its operations, commits at under a twentieth
# of the rate with backoff, and burns over a hundred ballots per commit.
[ "$(kv liveness_failures "$off")" = 1 ] ||
  { echo "FAIL: the run without backoff finished"; exit 1; }
awk -v off="$tp_off" -v on="$tp_on" 'BEGIN { exit !(off * 20 < on) }' ||
  { echo "FAIL: no livelock without backoff"; exit 1; }
[ "$ballots_off" -gt $(( (ok_off + 1) * 100 )) ] ||
  { echo "FAIL: too few ballots burned without backoff"; exit 1; }
# On: every operation commits and the run passes every check.
[ "$ok_on" -eq 1000 ] || { echo "FAIL: backoff on committed $ok_on of 1000"; exit 1; }
[ "$(kv runs_failed "$on")" = 0 ] || { echo "FAIL: backoff on failed a run"; exit 1; }
echo "ok"
