#!/usr/bin/env bash
# On a GPU machine with PyTorch: `tessel bench`, PyTorch's SDPA at the same
# shapes, and the side-by-side tables (docs/perf/ holds the H100's).
#   bench/run_gpu.sh TESSEL_BINARY OUT_DIR [SUITE ...] [tessel bench options]
# Writes OUT_DIR/bench.{json,csv,svg} (tessel), sdpa.json (PyTorch) and
# tables.md (the merge), and prints the tables.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tessel="$1" out="$2"
shift 2
mkdir -p "$out"
# A shape that fails (printed on stderr) leaves the others to compare.
"$tessel" bench "$@" --out "$out" | tee "$out/tessel.txt" || echo "run_gpu.sh: tessel bench reported failures" >&2
python3 "$here/peers/sdpa.py" "$out/bench.json" "$out/sdpa.json"
python3 "$here/peers/merge.py" "$out/bench.json" "$out/sdpa.json" | tee "$out/tables.md"
