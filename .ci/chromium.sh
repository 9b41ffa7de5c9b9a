#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the browser test (tests/serve/test_web_browser.py).
# Playwright drives /usr/bin/chromium directly; never run `playwright install` (no browser
# downloads). Prints the browser's version.
set -euo pipefail
if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >&2
  $SUDO apt-get install -y -qq chromium >&2
fi
/usr/bin/chromium --version
