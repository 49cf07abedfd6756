#!/usr/bin/env bash
# Renders a `loa report --html` page with headless Chromium (Debian package chromium, installed when
# missing) to a PNG, to check by eye that the page and its inline SVG charts draw. Offline: the page has
# no external assets, and Chromium is given no network.
#   Deploy/report-screenshot.sh REPORT.html OUT.png
set -euo pipefail
in=${1:?usage: report-screenshot.sh REPORT.html OUT.png}
out=${2:?usage: report-screenshot.sh REPORT.html OUT.png}
if ! command -v chromium >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
timeout 60 chromium --headless --no-sandbox --disable-gpu --user-data-dir="$profile" --proxy-server="127.0.0.1:9" \
  --window-size=1100,1400 --screenshot="$(realpath -m "$out")" "file://$(realpath "$in")" 2>/dev/null
echo "$out"
