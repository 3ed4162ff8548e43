#!/usr/bin/env bash
# Configures and builds tessel in build/ (Release with assertions on,
# warnings as errors). Extra arguments are ninja targets.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/deps.sh"
cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_FLAGS_RELEASE="-O2" -DTESSEL_WARNINGS_AS_ERRORS=ON >/dev/null
cmake --build "$root/build" -j "$(nproc)" ${1:+--target "$@"}
