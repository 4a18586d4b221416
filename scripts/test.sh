#!/usr/bin/env bash
# Set up, build and run the whole test suite (unit + integration) with ctest.
#   scripts/test.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
shift || true
# the crash hooks (disk/testhook.h) are for tests only: on here, off by default
scripts/setup.sh "$BUILD" -DWS_TEST_HOOKS=ON "$@"
cd "$BUILD"
ctest --output-on-failure --timeout 900
