#!/usr/bin/env bash
# Renders an eval report (quarry eval report --out FILE.html) in headless Chromium (Debian's
# `chromium` package) with the flags a closed network needs, and checks that the screenshot is not
# blank (scripts/png_stats.py).
#   ./scripts/check-report.sh REPORT.html [SCREENSHOT.png]
set -euo pipefail
cd "$(dirname "$0")/.."
report=$(realpath "$1")
png=${2:-${TMPDIR:-/tmp}/quarry-report.png}
profile=$(mktemp -d "${TMPDIR:-/tmp}/quarry-chromium.XXXXXX")
trap 'rm -rf "$profile"' EXIT
command -v chromium >/dev/null || { echo "needs chromium (apt-get install chromium)" >&2; exit 2; }
chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
  --disable-component-update --no-first-run --disable-sync --user-data-dir="$profile" \
  --window-size=1280,1800 --screenshot="$png" "file://$report" 2>/dev/null
python3 scripts/png_stats.py "$png"
echo "screenshot: $png"
