#!/usr/bin/env bash
# Renders the HTML sync report of a fresh demo in headless Chromium (Debian's
# `chromium` package) and writes a screenshot to look at, plus the DOM as
# Chromium parsed it (to check that the page needs nothing from the network).
#
#   scripts/report-in-browser.sh [OUTDIR]      (default: target/report-check)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/target/report-check}
command -v chromium >/dev/null || { echo "install Debian's chromium first: apt-get install chromium fonts-noto-cjk" >&2; exit 2; }
cargo build --quiet --manifest-path "$root/Cargo.toml"
hlx="$root/target/debug/hlx"
rm -rf "$out" && mkdir -p "$out"
"$hlx" demo --dir "$out/demo" >/dev/null
"$hlx" -c "$out/demo/exchange.toml" run >/dev/null || true
"$hlx" -c "$out/demo/exchange.toml" report --since 7d --format html --out "$out/report.html"
# No network: a page that needed an external asset would render without it.
chromium --headless=new --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
    --window-size=1400,1100 --screenshot="$out/report.png" "file://$out/report.html" 2>/dev/null
chromium --headless=new --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
    --dump-dom "file://$out/report.html" 2>/dev/null > "$out/report.dom.html"
grep -q "<svg" "$out/report.dom.html" || { echo "no SVG in the rendered DOM" >&2; exit 1; }
echo "screenshot: $out/report.png"
