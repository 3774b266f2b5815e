#!/bin/sh
# Classic Paxos without a leader (Paxos Made Simple §2.4): with backoff off,
# five proposers pre-empt each other and almost nothing commits while ballots
# pile up; with backoff on, the same run commits every operation.
# Usage: livelock.sh SABHA
set -eu
bin=$1
kv() { echo "$2" | sed -n "s/^$1: //p"; }
off=$("$bin" sim --protocol paxos --nodes 5 --clients 5 --faults none \
  --backoff off 2>/dev/null) || true
on=$("$bin" sim --protocol paxos --nodes 5 --clients 5 --faults none \
  --backoff on 2>/dev/null)
ok_off=$(kv ops_ok "$off"); ballots_off=$(kv ballots_burned "$off")
ok_on=$(kv ops_ok "$on"); ballots_on=$(kv ballots_burned "$on")
echo "backoff off: ops_ok=$ok_off ballots_burned=$ballots_off"
echo "backoff on:  ops_ok=$ok_on ballots_burned=$ballots_on"
# Off: under 5% of the operations commit, and ballots outnumber commits
# a hundredfold.
[ "$ok_off" -lt 50 ] || { echo "FAIL: no livelock without backoff"; exit 1; }
[ "$ballots_off" -gt $(( (ok_off + 1) * 100 )) ] ||
  { echo "FAIL: too few ballots burned without backoff"; exit 1; }
# On: every operation commits and the run passes every check.
[ "$ok_on" -eq 1000 ] || { echo "FAIL: backoff on committed $ok_on of 1000"; exit 1; }
[ "$(kv runs_failed "$on")" = 0 ] || { echo "FAIL: backoff on failed a run"; exit 1; }
echo "ok"
