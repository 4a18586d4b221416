#!/usr/bin/env bash
# docs/CONFIGURATION.md must hold exactly the table that `windowseal config docs` prints, so that
# the documentation cannot drift from the key table in config/config.c.
set -u
WS=$1
[ -x "$WS" ] || exit 77
SRC=${WS_SRC:-$(dirname "$0")/..}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
"$WS" config docs > "$tmp"
if grep -qxFf "$tmp" "$SRC/docs/CONFIGURATION.md" && \
   [ "$(grep -cxFf "$tmp" "$SRC/docs/CONFIGURATION.md")" -ge "$(grep -c . "$tmp")" ]; then
    echo "it_docs: 1 passed, 0 failed"
else
    echo "docs/CONFIGURATION.md is out of date: regenerate it from 'windowseal config docs'"
    diff <(grep '^|' "$SRC/docs/CONFIGURATION.md") <(grep '^|' "$tmp")
    echo "it_docs: 0 passed, 1 failed"
    exit 1
fi
