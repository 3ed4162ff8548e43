#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) in the instrumented build of
# scripts/sanitizer_build.sh (build-sanitize/) and runs each for
# TESSEL_FUZZ_SECONDS (default 30) on lavapipe with the validation layer on.
# The corpus grows in build-sanitize/corpus/<target>; a failing input is
# saved in build-sanitize/ as crash-*/timeout-*/oom-* and fails the script.
# Arguments name targets to run (default: all), e.g. `scripts/fuzz.sh op_fuzz`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/sanitizer_build.sh"
seconds="${TESSEL_FUZZ_SECONDS:-30}"
targets=("$@")
((${#targets[@]})) || targets=(npy_fuzz limits_fuzz op_fuzz)
cmake --build "$build" -j "$(nproc)" --target "${targets[@]/#/tessel_}"

export TESSEL_VALIDATION=1
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
