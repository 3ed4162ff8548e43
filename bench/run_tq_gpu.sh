#!/usr/bin/env bash
# On a GPU machine with PyTorch: tq_bench (the TurboQuant decode ops with
# their default plans next to decode_f16, after checking them against the
# reference; --sweep for every compiled variant) and PyTorch's SDPA at the
# decode shapes.
#   bench/run_tq_gpu.sh TQ_BENCH_BINARY OUT_DIR [--sweep] [SDPA_REPS]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bench="$1" out="$2"
shift 2
sweep=()
if [[ "${1:-}" == "--sweep" ]]; then sweep=(--sweep); shift; fi
mkdir -p "$out"
"$bench" "${sweep[@]}" >"$out/tessel.jsonl" 2> >(tee "$out/tessel.txt" >&2)
python3 "$here/peers/sdpa_decode.py" "${1:-100}" >"$out/sdpa.jsonl"
cat "$out/sdpa.jsonl"
