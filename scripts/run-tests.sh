#!/usr/bin/env bash
# Runs the test suite with node's test runner. FEDBIOT_LONG=1 enables the long tests.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(find test -name '*.test.ts' | sort)
if [ "${#files[@]}" -eq 0 ]; then echo "no test files found" >&2; exit 1; fi
exec node --import tsx --test --test-concurrency=1 "$@" "${files[@]}"
