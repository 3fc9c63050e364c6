#!/usr/bin/env bash
# Installs what the project needs on Debian/Ubuntu: a C++ toolchain and OpenBLAS (apt, when
# missing), the npm dependencies, the native kernels and the compiled CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
[ -f /usr/include/x86_64-linux-gnu/cblas.h ] || [ -f /usr/include/cblas.h ] || [ -f /usr/include/aarch64-linux-gnu/cblas.h ] || need+=(libopenblas-dev)
command -v g++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
command -v python3 >/dev/null || need+=(python3)
if [ "${#need[@]}" -gt 0 ]; then
  echo "setup: installing ${need[*]} with apt-get"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
# npm ci builds the addon and the TypeScript; after a git pull either may be stale, so rebuild
# the addon when missing and the TypeScript always (a few seconds).
[ -f build/Release/fedbiot_native.node ] || npm run install
npm run build >/dev/null
