#!/usr/bin/env python3
"""PyTorch's scaled_dot_product_attention at the shapes of a `tessel bench`
run, timed the way tessel times its kernels, written in the same JSON.

    python3 bench/peers/sdpa.py TESSEL_BENCH.json OUT.json
    python3 bench/peers/sdpa.py TESSEL_BENCH.json --dry-run   # what it would time

For every decode_f16 and prefill_* row of the tessel run, every SDPA backend
(flash, efficient, cudnn, math) that has a kernel for the shape is timed:
CUDA events around each call, untimed calls for 200 ms first (clocks), as
many timed calls as fit 2 s (10 to 100), and the same number of input sets
as tessel used, in turn, so the L2 cache does not flatter either side.
Decode is one query per head over an f16 cache; prefill is L queries over L
keys in the row's element type, causal when the row is. GQA through
enable_gqa. Each output row keeps the tessel row's dims, bytes, FLOPs and
floor, so merge.py can put the two side by side.
"""
import argparse
import json
import sys

BACKENDS = ("flash", "efficient", "cudnn", "math")
# The math backend materializes the score matrix; past this size it only
# measures the allocator.
MATH_SCORE_BYTES = 8 << 30


def is_peer_row(row):
    return row["kernel"] == "decode_f16" or row["kernel"].startswith("prefill_")


class Timer:
    """CUDA-event timing with a warm-up by time and an adaptive count."""

    def __init__(self, torch, warmup_ms=200.0, budget_ms=2000.0, min_reps=10, max_reps=100):
        self.torch = torch
        self.warmup_ms, self.budget_ms = warmup_ms, budget_ms
        self.min_reps, self.max_reps = min_reps, max_reps

    def _elapsed_ms(self, fn, first, count, sets):
        start = self.torch.cuda.Event(enable_timing=True)
        end = self.torch.cuda.Event(enable_timing=True)
        start.record()
        for i in range(count):
            fn((first + i) % sets)
        end.record()
        end.synchronize()
        return start.elapsed_time(end)

    def time(self, fn, sets):
        busy, per_call, calls = 0.0, 0.0, 1
        while busy < self.warmup_ms or per_call == 0.0:
            ms = self._elapsed_ms(fn, 0, calls, sets)
            busy += ms
            per_call = max(ms / calls, 1e-6)
            calls = min(max(int(self.warmup_ms / 4 / per_call), 1), 100)
        reps = min(max(int(self.budget_ms / per_call), self.min_reps), self.max_reps)
        times = sorted(1e3 * self._elapsed_ms(fn, i, 1, sets) for i in range(reps))
        at = lambda q: times[int(q * (len(times) - 1) + 0.5)]
        return {"reps": reps, "median_us": at(0.5), "p10_us": at(0.1), "p90_us": at(0.9)}


def copy_gbs(torch, timer):
    src = torch.ones(1 << 28, dtype=torch.float32, device="cuda")
    dst = torch.empty_like(src)
    t = timer.time(lambda _: dst.copy_(src), 1)
    return 2 * src.numel() * 4 / (t["median_us"] * 1e3)


def problem(row):
    """(q shape, kv shape, dtype name, causal, score elements) of a tessel row."""
    d = row["dims"]
    if row["kernel"] == "decode_f16":
        return ((d["B"], d["H"], 1, d["D"]), (d["B"], d["Hkv"], d["L"], d["D"]), "float16", False,
                d["B"] * d["H"] * d["L"])
    dtype = "bfloat16" if row["kernel"].endswith("bf16") else "float16"
    return ((d["B"], d["H"], d["L"], d["D"]), (d["B"], d["Hkv"], d["L"], d["D"]), dtype,
            bool(d["causal"]), d["B"] * d["H"] * d["L"] * d["L"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tessel_json")
    parser.add_argument("out", nargs="?")
    parser.add_argument("--dry-run", action="store_true", help="list the shapes and stop")
    args = parser.parse_args()
    tessel = json.load(open(args.tessel_json))
    rows = [r for r in tessel["rows"] if is_peer_row(r)]
    if args.dry_run:
        for r in rows:
            q, kv, dtype, causal, _ = problem(r)
            print(f"{r['kernel']:<14} {r['shape']:<40} q{list(q)} kv{list(kv)} {dtype}"
                  f"{' causal' if causal else ''} sets={r['sets']}")
        return
    if not args.out:
        parser.error("OUT is required unless --dry-run")

    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}
    timer = Timer(torch)
    out_rows = []
    for r in rows:
        q_shape, kv_shape, dtype_name, causal, scores = problem(r)
        dtype = getattr(torch, dtype_name)
        print(f"sdpa: {r['kernel']} {r['shape']}", file=sys.stderr, flush=True)
        data = [(torch.randn(q_shape, dtype=dtype, device="cuda"),
                 torch.randn(kv_shape, dtype=dtype, device="cuda"),
                 torch.randn(kv_shape, dtype=dtype, device="cuda")) for _ in range(r["sets"])]
        for name in BACKENDS:
            if name == "math" and scores * 4 > MATH_SCORE_BYTES:
                continue

            def call(i):
                q, k, v = data[i]
                return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)

            try:
                with sdpa_kernel([backends[name]]):
                    t = timer.time(call, r["sets"])
            except (RuntimeError, ValueError):
                continue  # this backend has no kernel for the shape, or no memory for it
            peer = {k: r[k] for k in ("suite", "set", "shape", "dims", "length_dim", "length",
                                      "bytes", "flops", "sets", "floor_us")}
            peer.update(kernel="sdpa_" + name, peer_of=r["kernel"], backend=name, **t)
            peer["gbs"] = r["bytes"] / (t["median_us"] * 1e3)
            peer["tflops"] = r["flops"] / (t["median_us"] * 1e6) if r["flops"] else None
            peer["floor_fraction"] = r["floor_us"] / t["median_us"]
            out_rows.append(peer)
        del data
        torch.cuda.empty_cache()

    doc = {"tool": "pytorch sdpa",
           "device": {"name": torch.cuda.get_device_name(),
                      "driver": f"PyTorch {torch.__version__}, CUDA {torch.version.cuda}",
                      "type": "cuda"},
           "copy": {"gbs": copy_gbs(torch, timer)},
           "rows": out_rows}
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
