#!/usr/bin/env bash
# The test suite built with AddressSanitizer and UndefinedBehaviorSanitizer
# (scripts/sanitizer_build.sh) and run on lavapipe with the validation layer
# on. A sanitizer report aborts the test that caused it. Arguments go to
# ctest (e.g. -R fwht).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/sanitizer_build.sh"
cmake --build "$build" -j "$(nproc)" --target tessel_dsl_tests tessel_device_tests \
  tessel_tool_tests tessel_cli
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
