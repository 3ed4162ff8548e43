#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang with AddressSanitizer and
# UndefinedBehaviorSanitizer) in build-fuzz/ and runs each for
# TESSEL_FUZZ_SECONDS (default 30) on lavapipe with the validation layer on.
# The corpus grows in build-fuzz/corpus/<target>; a failing input is saved in
# build-fuzz/ as crash-*/timeout-*/oom-* and fails the script.
# Arguments name targets to run (default: all), e.g. `scripts/fuzz.sh op_fuzz`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/deps.sh"
# Debian 12's default clang (14) cannot compile tessel (float template
# arguments); clang 19 is in bookworm too.
tessel_require_packages clang-19 libclang-rt-19-dev
build="$root/build-fuzz"
seconds="${TESSEL_FUZZ_SECONDS:-30}"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++-19 \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1" -DTESSEL_WARNINGS_AS_ERRORS=ON \
  -DTESSEL_BUILD_FUZZERS=ON -DTESSEL_BUILD_TESTS=OFF -DTESSEL_BUILD_TOOLS=OFF \
  -DTESSEL_BUILD_EXAMPLES=OFF -DTESSEL_BUILD_BENCH=OFF >/dev/null
targets=("$@")
((${#targets[@]})) || targets=(npy_fuzz limits_fuzz op_fuzz)
cmake --build "$build" -j "$(nproc)" --target "${targets[@]/#/tessel_}"

# Recording every allocation's stack made lavapipe's shader compiles (LLVM,
# allocation-heavy) ten times slower; rerun a failing input with
# ASAN_OPTIONS=malloc_context_size=30 for the allocation stacks.
export ASAN_OPTIONS="detect_leaks=1:malloc_context_size=0"
export LSAN_OPTIONS="suppressions=$root/scripts/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export TESSEL_DEVICE="${TESSEL_DEVICE:-llvmpipe}" TESSEL_VALIDATION=1
# Pipelines are compiled once per process; keep them out of the user's cache.
export XDG_CACHE_HOME="$build/cache"
declare -A seeds=([npy_fuzz]="$root/tests/tools/data")
cd "$build"
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  echo "tessel fuzz: $target for ${seconds} s" >&2
  # -timeout: one input taking longer is a hang (op_fuzz's first inputs
  # compile pipelines on lavapipe for seconds). -rss_limit_mb bounds what
  # the reference and lavapipe hold together. -len_control=0: full-length
  # inputs from the start, so the first runs already carry mutations.
  "./tests/fuzz/tessel_$target" -max_total_time="$seconds" -timeout=120 -rss_limit_mb=4096 \
    -len_control=0 -print_final_stats=1 "corpus/$target" \
    ${seeds[$target]:+"${seeds[$target]}"}
done
