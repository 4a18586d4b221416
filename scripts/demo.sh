#!/usr/bin/env bash
# Set up, build and run `windowseal demo` on the embedded broker.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
exec build/windowseal demo --out "${1:-out/demo}"
