#!/usr/bin/env bash
# Set up a fresh Debian 12 machine for windowseal and build it.
#   scripts/setup.sh [BUILD_DIR] [extra cmake args...]
# Installs (as root, idempotently, quietly) every Debian package the build, the tests and the
# demo need, then configures and builds into BUILD_DIR (default: build).
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
      librdkafka-dev libsodium-dev libjansson-dev liburing-dev liblz4-dev lz4
      libcurl4-openssl-dev libssl-dev openssl libmicrohttpd-dev libavro-dev python3-avro avro-bin
      libsnappy-dev python3-snappy zlib1g-dev
      kcat python3 python3-confluent-kafka python3-cryptography python3-botocore python3-pyflakes
      python3-jsonschema
      strace procps util-linux curl chromium)
# The tests' S3 server (s3rver) comes from npm: use the machine's Node.js if it has one (some
# images ship their own, which Debian's npm package would conflict with).
command -v npm >/dev/null 2>&1 || PKGS+=(nodejs npm)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "setup: installing ${missing[*]}" >&2
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

BUILD=${1:-build}
shift || true
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$BUILD" -j"$(nproc)" >/dev/null
echo "setup: built $BUILD/windowseal" >&2
