#!/bin/sh
# Renders the lab's report in a real browser (headless Chromium) and checks
# that every chart drew something, then keeps a screenshot for a person to
# look at.
#
# The report itself carries no script. The check runs on a copy with one
# appended: after layout it measures each <svg> and the marks inside it
# (lines, paths, rectangles, text) and writes what it found into the page,
# which --dump-dom prints. A chart that failed to render (zero size, or no
# mark with a non-empty box) is counted as broken.
#
# usage: render_report.sh SABHA OUTDIR [SCENARIO...]
set -eu
sabha=$1
out=$2
shift 2
[ $# -gt 0 ] || set -- benchmark

browser=""
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
done
[ -n "$browser" ] || { echo "no chromium: run ./scripts/deps.sh test"; exit 1; }

rm -rf "$out"
mkdir -p "$out"
"$sabha" lab "$@" --seeds 1 --out "$out/lab" >"$out/lab.log" 2>&1 ||
  { echo "sabha lab failed:"; tail -5 "$out/lab.log"; exit 1; }
report="$out/lab/report.html"
[ -s "$report" ] || { echo "no report at $report"; exit 1; }

# The probe goes just before </body>, so it runs after the charts parse.
probe='<script>
addEventListener("load", function () {
  var svgs = document.querySelectorAll("svg"), ok = 0;
  for (var i = 0; i < svgs.length; i++) {
    var r = svgs[i].getBoundingClientRect(), marks = 0;
    var els = svgs[i].querySelectorAll("line,polyline,path,rect,circle,text");
    for (var j = 0; j < els.length; j++) {
      var b = els[j].getBBox();
      if (b.width > 0 || b.height > 0) marks++;
    }
    if (r.width >= 100 && r.height >= 50 && marks >= 3) ok++;
  }
  var p = document.createElement("pre");
  p.id = "render-check";
  p.textContent = "charts=" + svgs.length + " rendered=" + ok;
  document.body.appendChild(p);
});
</script>'
probed="$out/probed.html"
awk -v probe="$probe" '/<\/body>/ && !done { print probe; done = 1 } { print }' \
  "$report" >"$probed"
grep -q 'render-check' "$probed" || { echo "report has no </body>"; exit 1; }

run_browser() {
  timeout 120 "$browser" --headless --no-sandbox --disable-gpu \
    --user-data-dir="$out/profile" --virtual-time-budget=5000 "$@" 2>>"$out/browser.log"
}
dom=$(run_browser --dump-dom "file://$(cd "$(dirname "$probed")" && pwd)/probed.html")
line=$(printf '%s\n' "$dom" | grep -o 'charts=[0-9]* rendered=[0-9]*' | head -1)
[ -n "$line" ] || { echo "the probe did not run; browser log:"; tail -5 "$out/browser.log"; exit 1; }
charts=${line#charts=}; charts=${charts%% *}
rendered=${line##*rendered=}
echo "report: $charts charts, $rendered rendered"
[ "$charts" -ge 3 ] || { echo "expected at least 3 charts"; exit 1; }
[ "$rendered" = "$charts" ] || { echo "$((charts - rendered)) chart(s) did not render"; exit 1; }

run_browser --screenshot="$out/report.png" --window-size=1280,2400 \
  "file://$(cd "$(dirname "$report")" && pwd)/report.html" >/dev/null
[ -s "$out/report.png" ] || { echo "no screenshot"; exit 1; }
echo "screenshot: $out/report.png"
