#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite. FEDBIOT_LONG=1 adds the long tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm run typecheck
bash scripts/run-tests.sh
