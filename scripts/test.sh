#!/usr/bin/env bash
# Set up, build and run the whole test suite (unit + integration) with ctest.
#   scripts/test.sh [BUILD_DIR] [extra cmake args...]
# WS_CTEST_ARGS (optional) is passed to ctest, e.g. "-R it_engine" or "-E ^it_prove$".
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
shift || true
# the crash hooks (disk/testhook.h) are for tests only: on here, off by default
scripts/setup.sh "$BUILD" -DWS_TEST_HOOKS=ON "$@"
cd "$BUILD"
# shellcheck disable=SC2086 # word splitting of WS_CTEST_ARGS is the point
ctest --output-on-failure --timeout 900 ${WS_CTEST_ARGS:-}
