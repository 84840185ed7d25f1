#!/usr/bin/env bash
# Opens laconic report pages (`report.html` of a run or a lab) in headless Chromium and checks what a
# reader would see: the page loads with no console error, and every figure has a non-empty box.
#   scripts/check-report-page.sh PAGE.html [PAGE.html …]
# Needs Debian's `chromium` (apt-get install chromium). The page is copied with a probe script
# appended (the page itself has none), which writes the figures' boxes into the DOM Chromium dumps.
set -euo pipefail
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "check-report-page: no chromium on this machine" >&2; exit 2; }
[ $# -gt 0 ] || { echo "usage: $0 PAGE.html [PAGE.html …]" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for page in "$@"; do
  [ -f "$page" ] || { echo "FAIL $page: no such file" >&2; status=1; continue; }
  probe="$work/$(basename "$page" .html)-probe.html"
  sed 's#</body>#<script>addEventListener("load",()=>{const f=[...document.querySelectorAll(".figure")];const e=f.filter(x=>{const s=x.querySelector("svg");if(!s)return true;const r=s.getBoundingClientRect();return !(r.width>0\&\&r.height>0)});const p=document.createElement("pre");p.id="laconic-probe";p.textContent="figures "+f.length+" empty "+e.length;document.body.append(p)})</script></body>#' "$page" > "$probe"
  dom="$work/dom.html"; log="$work/console.log"
  timeout 60 "$browser" --headless --no-sandbox --disable-gpu --no-first-run --disable-extensions \
    --user-data-dir="$work/profile" --enable-logging=stderr --v=0 --virtual-time-budget=5000 \
    --dump-dom "file://$(realpath "$probe")" > "$dom" 2> "$log" || true
  probe_line=$(grep -o 'figures [0-9]* empty [0-9]*' "$dom" || true)
  errors=$(grep -E 'CONSOLE|Uncaught' "$log" || true)
  if [ -z "$probe_line" ]; then
    echo "FAIL $page: the page did not load (no probe result); browser log:" >&2; tail -5 "$log" >&2; status=1
  elif [ -n "$errors" ]; then
    echo "FAIL $page: console messages:" >&2; echo "$errors" >&2; status=1
  elif [ "${probe_line##* }" != 0 ] || [ "$(echo "$probe_line" | cut -d' ' -f2)" = 0 ]; then
    echo "FAIL $page: $probe_line (every figure must have a non-empty box, and there must be one)" >&2; status=1
  else
    echo "ok $page: $probe_line, no console message"
  fi
done
exit $status
