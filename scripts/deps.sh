#!/usr/bin/env bash
# Installs tessel's build and run dependencies from Debian 12's packages when
# any is missing. Sourced by demo.sh, test.sh, sanitize.sh and fuzz.sh;
# scripts that need more (fuzz.sh: clang 19 and its libFuzzer runtime) call
# tessel_require_packages with their own list.
set -euo pipefail

tessel_require_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  echo "tessel: installing ${missing[*]}" >&2
  local sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

tessel_require_packages \
  cmake ninja-build g++ pkg-config \
  libboost-dev libvulkan-dev libshaderc-dev glslang-dev spirv-tools glslc \
  libspirv-cross-c-shared-dev libgtest-dev \
  mesa-vulkan-drivers vulkan-validationlayers vulkan-tools

# Vulkan's loader warns without a runtime directory (headless machines, CI).
if [[ -z "${XDG_RUNTIME_DIR:-}" || ! -w "${XDG_RUNTIME_DIR}" ]]; then
  export XDG_RUNTIME_DIR="${TMPDIR:-/tmp}/tessel-runtime-$(id -u)"
  mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
fi
# lavapipe compiles every pipeline with LLVM, and Mesa keeps the results in
# its shader cache. One cache for every build the scripts make (test.sh,
# sanitize.sh, fuzz.sh) lets a later run reuse the compiles of an earlier
# one: the same GLSL gives the same SPIR-V whichever compiler built tessel.
# Mesa creates only the last component of the path; without the directory
# it disables the cache and says so on stderr.
export MESA_SHADER_CACHE_DIR="${MESA_SHADER_CACHE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.cache/mesa}"
mkdir -p "$MESA_SHADER_CACHE_DIR"
