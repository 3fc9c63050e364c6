#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite. FEDBIOT_LONG=1 adds the long tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The report test renders pages in headless Chromium (Debian's package; nothing is downloaded by npm).
if [ ! -x /usr/bin/chromium ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "test: installing chromium with apt-get for the browser test"
  $SUDO apt-get update -qq || true
  if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium; then
    if [ "${CI:-}" = "true" ]; then echo "test: chromium could not be installed" >&2; exit 1; fi
    echo "test: chromium could not be installed; the browser test will be skipped"
  fi
fi
npm run typecheck
bash scripts/run-tests.sh
