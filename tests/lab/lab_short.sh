#!/bin/sh
# A short lab run (benchmark and monsoon, one seed, every engine; then
# cities, with five groups) and what it must leave behind: a complete HTML5 report with SVG charts, valid
# JSON naming both scenarios, and the CSV files with their headers. Also
# the usage errors: an unknown scenario and a bad file exit 2 with the
# file and line.
#
# usage: lab_short.sh SABHA OUTDIR SOURCE_DIR
set -eu
sabha=$1
out=$2
src=$3
rm -rf "$out"
mkdir -p "$out"
fail() { echo "FAIL: $*"; exit 1; }

"$sabha" lab benchmark monsoon --seeds 1 --scenarios "$src/scenarios" \
  --out "$out/lab" >"$out/stdout" 2>"$out/stderr" ||
  { cat "$out/stderr"; fail "sabha lab exited $?"; }
grep -q "report: $out/lab/report.html" "$out/stdout" || fail "no report line"

r="$out/lab/report.html"
[ -s "$r" ] || fail "no report.html"
head -c 15 "$r" | grep -q '<!DOCTYPE html>' || fail "report.html: no doctype"
grep -q '<html lang="en">' "$r" || fail "report.html: no <html lang>"
grep -q '<meta charset="utf-8">' "$r" || fail "report.html: no charset"
grep -q '<title>' "$r" || fail "report.html: no title"
tail -c 20 "$r" | grep -q '</html>' || fail "report.html: not closed"
[ "$(grep -c '<svg' "$r")" -ge 6 ] || fail "report.html: fewer than 6 charts"
[ "$(grep -c '<svg' "$r")" -eq "$(grep -c '</svg>' "$r")" ] ||
  fail "report.html: unbalanced <svg>"
grep -v 'xmlns="http://www.w3.org/2000/svg"' "$r" | grep -qi '<script\|src="http' &&
  fail "report.html must not load anything or run scripts"

j="$out/lab/results.json"
if command -v python3 >/dev/null 2>&1; then
  python3 -m json.tool "$j" >/dev/null || fail "results.json is not JSON"
else
  head -c 1 "$j" | grep -q '{' || fail "results.json does not start with {"
fi
grep -q '"name":"benchmark"' "$j" || fail "results.json lacks benchmark"
grep -q '"name":"monsoon"' "$j" || fail "results.json lacks monsoon"

for f in runs summary recovery timeseries leaders; do
  [ -s "$out/lab/$f.csv" ] || fail "no $f.csv"
  head -1 "$out/lab/$f.csv" | grep -q '^scenario,variant,engine' ||
    fail "$f.csv header"
done
[ "$(wc -l <"$out/lab/runs.csv")" -ge 9 ] || fail "runs.csv: fewer than 8 runs"

# Consensus engines on the majority side of the monsoon cut keep going.
grep -q 'monsoon,,raft,1,' "$out/lab/runs.csv" || fail "no monsoon raft row"

# Several groups (scenarios/cities.scn: five cities, five groups): a row
# per group and engine in the text tables, a Groups table in the HTML, a
# `groups` array per run in results.json, and no check failing.
"$sabha" lab cities --seeds 1 --scenarios "$src/scenarios" \
  --out "$out/cities" >"$out/cities.out" 2>"$out/cities.err" ||
  { cat "$out/cities.err"; fail "sabha lab cities exited $?"; }
grep -q "groups (5 per node)" "$out/cities.out" || fail "cities: no groups"
for g in 0 1 2 3 4; do
  [ "$(grep -c "^     $g  " "$out/cities.out")" -eq 4 ] ||
    fail "cities: group $g has not one row per engine"
done
grep -q "<b>Groups</b>" "$out/cities/report.html" ||
  fail "cities: no Groups table in the report"
grep -q '"groups":\[{"group":0,"leader":' "$out/cities/results.json" ||
  fail "cities: results.json has no groups"

# Usage errors.
set +e
"$sabha" lab no-such-scenario --scenarios "$src/scenarios" --out "$out/x" \
  >/dev/null 2>"$out/err1"
[ $? -eq 2 ] || fail "unknown scenario: exit status not 2"
"$sabha" lab "$src/tests/lab/bad/bad-time.scn" --out "$out/x" \
  >/dev/null 2>"$out/err2"
[ $? -eq 2 ] || fail "bad file: exit status not 2"
grep -q 'bad-time.scn:5:' "$out/err2" || fail "bad file: no line number"
"$sabha" lab --list --scenarios "$src/scenarios" >"$out/list" ||
  fail "--list failed"
grep -q 'three-way-split' "$out/list" || fail "--list lacks three-way-split"
echo "lab short run: ok"
