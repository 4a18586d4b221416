#!/usr/bin/env bash
# Set up, build and run the whole test suite (unit + integration) with ctest.
#   scripts/test.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
scripts/setup.sh "$@"
cd "$BUILD"
ctest --output-on-failure --timeout 900
