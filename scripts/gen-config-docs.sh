#!/usr/bin/env bash
# Regenerate docs/CONFIGURATION.md from the key table (config/config.c) via `windowseal config docs`.
set -euo pipefail
cd "$(dirname "$0")/.."
WS=${1:-build/windowseal}
{
    sed -n '1,/^This table is generated/p' docs/CONFIGURATION.md
    echo
    "$WS" config docs
} > docs/CONFIGURATION.md.new
mv docs/CONFIGURATION.md.new docs/CONFIGURATION.md
