#!/usr/bin/env bash
# The main job: builds the tessel program and runs every kernel on the default
# Vulkan device (a GPU if there is one, else lavapipe), checked against the
# double-precision reference. Arguments go to `tessel demo`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/build.sh" tessel
"$root/build/tools/tessel" info
exec "$root/build/tools/tessel" demo "$@"
