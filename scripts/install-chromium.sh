#!/usr/bin/env bash
# Debian's Chromium for the dashboard's browser test: Playwright drives it and never downloads a browser
# of its own. A no-op when it is there (or D2M_CHROMIUM names another build).
set -euo pipefail
chromium=${D2M_CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "the dashboard test needs Chromium: install it, or set D2M_CHROMIUM to its binary" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
echo "bootstrap: installing Debian's chromium for the browser tests (apt-get) ..." >&2
$sudo apt-get install -y -q chromium >/dev/null 2>&1 || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q chromium >/dev/null; }
[ -x "$chromium" ] || { echo "Chromium did not install at $chromium" >&2; exit 1; }
