#!/usr/bin/env bash
# The test suite built with AddressSanitizer and UndefinedBehaviorSanitizer
# (GCC, -O1, assertions on) in build-sanitize/ and run on lavapipe with the
# validation layer on. A sanitizer report aborts the test that caused it.
# Arguments go to ctest (e.g. -R fwht).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/deps.sh"
build="$root/build-sanitize"
sanitizers="-fsanitize=address,undefined -fno-sanitize-recover=all"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_FLAGS_RELEASE="-O1" -DCMAKE_CXX_FLAGS="$sanitizers -fno-omit-frame-pointer -g1" \
  -DCMAKE_EXE_LINKER_FLAGS="$sanitizers" -DTESSEL_WARNINGS_AS_ERRORS=ON \
  -DTESSEL_BUILD_EXAMPLES=OFF -DTESSEL_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target tessel_dsl_tests tessel_device_tests \
  tessel_tool_tests tessel_cli

# The Vulkan loader, Mesa and the validation layer are not instrumented; what
# they keep until exit is theirs (scripts/lsan.supp). Everything of tessel's
# is still leak-checked.
# Recording every allocation's stack made lavapipe's shader compiles (LLVM,
# allocation-heavy) ten times slower; rerun a failing test with
# ASAN_OPTIONS=malloc_context_size=30 for the allocation stacks.
export ASAN_OPTIONS="detect_leaks=1:malloc_context_size=0"
export LSAN_OPTIONS="suppressions=$root/scripts/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export TESSEL_DEVICE="${TESSEL_DEVICE:-llvmpipe}"
cd "$build"
# Left out, since scripts/test.sh runs them without sanitizers: compile_fail
# and package (they test the compiler and the install rules, not tessel's run
# time); gpu_av (shaders under the validation layer's instrumentation); the
# dump tests and Variants.EveryVariantCompilesAndValidatesOnEveryTarget, which
# compile every variant for every target in uninstrumented glslang and took
# 10 of the run's CPU minutes under AddressSanitizer (the device tests
# generate and compile each variant they run).
exec ctest --output-on-failure -j "$(nproc)" \
  -E '^(compile_fail\.|package\.|gpu_av\.|tessel_cli\.dump_|Variants\.EveryVariantCompiles)' "$@"
