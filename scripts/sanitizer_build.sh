#!/usr/bin/env bash
# The instrumented build that scripts/sanitize.sh and scripts/fuzz.sh share
# (sourced by both): clang 19 with AddressSanitizer and
# UndefinedBehaviorSanitizer, assertions on, warnings as errors, in
# build-sanitize/. Everything is compiled with libFuzzer's coverage
# instrumentation too (-fsanitize=fuzzer-no-link), so the tests and the
# fuzz targets link the same compiled catalog and nothing is built twice.
# -O0: the compiled catalog took 10x the CPU time to build at -O1 under the
# sanitizers (456 s against 47 s), and the run time is lavapipe's, which is
# not instrumented.
# Debian 12's default clang (14) cannot compile tessel (it has no
# floating-point template arguments); clang 19 is in bookworm too.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/deps.sh"
tessel_require_packages clang-19 libclang-rt-19-dev
build="$root/build-sanitize"
sanitizers="-fsanitize=address,undefined -fno-sanitize-recover=all"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++-19 \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O0" \
  -DCMAKE_CXX_FLAGS="$sanitizers -fsanitize=fuzzer-no-link -fno-omit-frame-pointer -g1" \
  -DCMAKE_EXE_LINKER_FLAGS="$sanitizers" -DTESSEL_WARNINGS_AS_ERRORS=ON \
  -DTESSEL_BUILD_FUZZERS=ON -DTESSEL_BUILD_EXAMPLES=OFF -DTESSEL_BUILD_BENCH=OFF >/dev/null

# Recording every allocation's stack made lavapipe's shader compiles (LLVM,
# allocation-heavy) ten times slower; rerun a failure with
# ASAN_OPTIONS=malloc_context_size=30 for the allocation stacks. The Vulkan
# loader, Mesa and the validation layer are not instrumented; what they keep
# until exit is theirs (scripts/lsan.supp), and everything of tessel's is
# still leak-checked.
export ASAN_OPTIONS="detect_leaks=1:malloc_context_size=0"
export LSAN_OPTIONS="suppressions=$root/scripts/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export TESSEL_DEVICE="${TESSEL_DEVICE:-llvmpipe}"
