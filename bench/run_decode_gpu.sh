#!/usr/bin/env bash
# On a GPU machine with PyTorch: tessel's decode bench (with --sweep when
# asked), PyTorch's SDPA at the same shapes, and the merged table.
#   bench/run_decode_gpu.sh BENCH_BINARY OUT_DIR [--sweep]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bench="$1" out="$2"
shift 2
mkdir -p "$out"
"$bench" "$@" >"$out/tessel.jsonl"
python3 "$here/peers/sdpa_decode.py" >"$out/sdpa.jsonl"
python3 "$here/peers/merge.py" "$out/tessel.jsonl" "$out/sdpa.jsonl" | tee "$out/table.md"
