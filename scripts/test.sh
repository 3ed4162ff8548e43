#!/usr/bin/env bash
# Builds everything and runs the test suite (CTest) on lavapipe with the
# Khronos validation layer on. Arguments go to ctest (e.g. -R fwht).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/build.sh" all  # every target; this script's arguments are ctest's
# Tests run on the CPU driver so results do not depend on the machine's GPU.
export TESSEL_DEVICE="${TESSEL_DEVICE:-llvmpipe}"
cd "$root/build"
exec ctest --output-on-failure -j "$(nproc)" "$@"
