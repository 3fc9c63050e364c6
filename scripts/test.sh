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
# llama.cpp (node-llama-cpp, 700 MB) is the independent reader of our GGUF exports. It stays out of
# package.json; CI (or FEDBIOT_LLAMA_CPP=1) installs it beside the project so those tests run.
if [ "${CI:-}" = "true" ] || [ "${FEDBIOT_LLAMA_CPP:-}" = "1" ]; then
  if [ ! -d .cache/llama-cpp/node_modules/node-llama-cpp ]; then
    echo "test: installing node-llama-cpp 3.21.1 into .cache/llama-cpp for the GGUF parity tests"
    mkdir -p .cache/llama-cpp
    npm install --no-audit --no-fund --no-save --prefix .cache/llama-cpp node-llama-cpp@3.21.1 >/dev/null
  fi
  export FEDBIOT_NODE_LLAMA_CPP="$PWD/.cache/llama-cpp/node_modules/node-llama-cpp"
fi
npm run typecheck
npm run lint
bash scripts/run-tests.sh
