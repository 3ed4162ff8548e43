#!/usr/bin/env python3
"""PyTorch next to bench/prefill_check (issue 7): scaled_dot_product_attention
(flash and cuDNN backends) at the issue's prefill shapes, and torch.matmul at
the GEMM ceiling's M = N = K = 8192, timed as sdpa.py times (CUDA events,
200 ms of untimed calls first, as many timed calls as fit 2 s, median).

    python3 bench/peers/prefill_issue7.py [OUT.json]

Prints one line per (shape, backend) in prefill_check's units: TFLOP/s =
4 * B * H * L * L * D / time, halved for causal; a GEMM counts 2 M N K.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sdpa import Timer  # noqa: E402

# (B, H, Hkv, L, D, causal, dtype): bench/prefill_check.cpp's issue_shapes.
SHAPES = [(1, 16, 8, 2048, 256, True, "bfloat16"), (1, 16, 8, 8192, 256, True, "bfloat16"),
          (1, 16, 8, 8192, 256, False, "float16"), (1, 16, 2, 8192, 512, True, "bfloat16"),
          (32, 12, 12, 512, 64, False, "bfloat16"), (4, 32, 8, 8192, 128, True, "bfloat16")]
GEMM = 8192
SETS = 2  # inputs alternate between two sets; every shape's set exceeds the 50 MB L2


def main():
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    timer = Timer(torch)
    rows = []
    backends = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}
    for b, h, hkv, length, d, causal, dtype_name in SHAPES:
        dtype = getattr(torch, dtype_name)
        data = [(torch.randn(b, h, length, d, dtype=dtype, device="cuda"),
                 torch.randn(b, hkv, length, d, dtype=dtype, device="cuda"),
                 torch.randn(b, hkv, length, d, dtype=dtype, device="cuda")) for _ in range(SETS)]
        flops = 4.0 * b * h * length * length * d * (0.5 if causal else 1.0)
        shape = (f"B={b} H={h} Hkv={hkv} L={length} D={d} "
                 f"{'causal' if causal else 'non-causal'} {'bf16' if dtype_name == 'bfloat16' else 'f16'}")
        for name, backend in backends.items():
            def call(i):
                q, k, v = data[i]
                return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)

            try:
                with sdpa_kernel([backend]):
                    t = timer.time(call, SETS)
            except (RuntimeError, ValueError) as e:
                print(f"SDPA {shape:<42} {name:<6} no kernel ({str(e).splitlines()[0][:80]})", flush=True)
                continue
            tflops = flops / (t["median_us"] * 1e6)
            print(f"SDPA {shape:<42} {name:<6} {t['median_us'] / 1e3:8.3f} ms {tflops:6.1f} TFLOP/s",
                  flush=True)
            rows.append({"shape": shape, "backend": name, "tflops": tflops, **t})
        del data
        torch.cuda.empty_cache()
    for dtype_name in ("float16", "bfloat16"):
        dtype = getattr(torch, dtype_name)
        a = torch.rand(GEMM, GEMM, dtype=dtype, device="cuda") - 0.5
        b = torch.rand(GEMM, GEMM, dtype=dtype, device="cuda") - 0.5
        t = timer.time(lambda _: torch.matmul(a, b), 1)
        tflops = 2.0 * GEMM ** 3 / (t["median_us"] * 1e6)
        print(f"MATMUL torch.matmul {dtype_name} M=N=K={GEMM}: {t['median_us'] / 1e3:8.3f} ms "
              f"{tflops:6.1f} TFLOP/s", flush=True)
        rows.append({"shape": f"matmul {dtype_name} {GEMM}", "backend": "cublas", "tflops": tflops,
                     **t})
        del a, b
    print(f"PyTorch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name()}")
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w") as f:
            json.dump({"torch": torch.__version__, "rows": rows}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
