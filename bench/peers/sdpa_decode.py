#!/usr/bin/env python3
"""PyTorch's scaled_dot_product_attention at decode_bench's shapes (one query
per head, f16 K/V, GQA through enable_gqa), timed by sdpa.py's Timer (CUDA
events per call after a warm-up), input sets rotated like decode_bench so
the L2 cache does not flatter it. Writes JSON lines in decode_bench's format
("kind": "sdpa") to stdout. `tessel bench` has its own peer: sdpa.py."""
import json
import math
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from sdpa import Timer, copy_gbs

SHAPES = [(1, 16, 8, 256, 4096), (1, 16, 8, 256, 32768), (1, 16, 2, 512, 32768),
          (8, 32, 8, 128, 32768)]
L2_BYTES = 50 << 20
BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
            "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    timer = Timer(torch, min_reps=reps, max_reps=reps)
    gbs_copy = copy_gbs(torch, timer)
    print(json.dumps({"kind": "torch_copy", "device": torch.cuda.get_device_name(),
                      "torch": torch.__version__, "gbs": gbs_copy}), flush=True)
    for batch, heads, kv_heads, dim, length in SHAPES:
        cache = batch * kv_heads * length * dim
        nbytes = 2 * cache * 2 + 2 * batch * heads * dim * 2
        sets = min(64, max(2, math.ceil(3 * L2_BYTES / nbytes)))
        data = []
        for _ in range(sets):
            q = torch.randn(batch, heads, 1, dim, dtype=torch.float16, device="cuda")
            k = torch.randn(batch, kv_heads, length, dim, dtype=torch.float16, device="cuda")
            v = torch.randn(batch, kv_heads, length, dim, dtype=torch.float16, device="cuda")
            data.append((q, k, v))
        for name, backend in BACKENDS.items():
            def call(i):
                q, k, v = data[i]
                return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
            try:
                with sdpa_kernel([backend]):
                    t = (timer if name != "math" else Timer(torch, min_reps=20, max_reps=20)).time(
                        call, sets)
                med, p10, p90 = t["median_us"], t["p10_us"], t["p90_us"]
            except RuntimeError:
                continue  # this backend has no kernel for the shape
            gbs = nbytes / (med * 1e3)
            print(json.dumps({"kind": "sdpa", "backend": name, "batch": batch, "heads": heads,
                              "kv_heads": kv_heads, "dim": dim, "length": length,
                              "bytes": nbytes, "median_us": med, "p10_us": p10, "p90_us": p90,
                              "gbs": gbs, "sets": sets}), flush=True)
        del data
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
