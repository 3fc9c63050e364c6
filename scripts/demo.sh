#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node bin/fedbiot.js demo "$@"
