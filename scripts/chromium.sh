#!/usr/bin/env bash
# Make sure headless Chromium (Debian's package) is there for the dashboard's browser test:
# print its path, or exit non-zero with the reason on stderr (the test then skips).
set -euo pipefail
if ! command -v chromium >/dev/null; then
  command -v apt-get >/dev/null || { echo "no Chromium and no apt-get" >&2; exit 1; }
  [ "$(id -u)" = 0 ] || { echo "no Chromium, and installing it needs root" >&2; exit 1; }
  { timeout 600 apt-get install -y -q chromium || { apt-get update -q && timeout 600 apt-get install -y -q chromium; }; } \
    >/dev/null 2>&1 || { echo "cannot install Debian's chromium package" >&2; exit 1; }
fi
command -v chromium
