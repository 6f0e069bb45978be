#!/usr/bin/env bash
# Makes sure headless Chromium is there: the statistics page is tested in a real browser
# (tests/e2e/page.rs). Installs Debian's `chromium` with apt-get when run as root on
# Debian (about 20 s); otherwise says what is missing and fails. Prints the binary's path.
for name in chromium chromium-browser; do
  if command -v "$name" >/dev/null; then command -v "$name"; exit 0; fi
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing chromium (headless browser for the statistics page test)" >&2
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
  fi
  command -v chromium
else
  echo "headless Chromium is required for the page test: apt-get install chromium" >&2
  exit 1
fi
