#!/usr/bin/env python3
"""Merges decode_bench's and sdpa_decode.py's JSON lines into the markdown
table of docs/perf/decode_f16.md: tessel's default plan next to each PyTorch
backend, as time and as a fraction of the copy bandwidth tessel measured, and
(after a --sweep) the fastest tilings per shape."""
import json
import sys


def plan(r):
    return f"{r['heads_per_group']}/{r['heads_per_subgroup']}/{r['position_splits']}, {r['nwg']}"


def main():
    rows = [json.loads(line) for path in sys.argv[1:] for line in open(path) if line.startswith("{")]
    copy = next(r["gbs"] for r in rows if r["kind"] == "copy")
    device = next(r["device"] for r in rows if r["kind"] == "copy")
    torch_copy = next((r for r in rows if r["kind"] == "torch_copy"), None)
    print(f"Device: {device}. Copy bandwidth (read + write): {copy:.0f} GB/s measured by tessel"
          + (f", {torch_copy['gbs']:.0f} GB/s by PyTorch {torch_copy['torch']}" if torch_copy else "")
          + ". Floor = bytes / copy bandwidth.\n")
    print("| shape (B, H, Hkv, D, L) | MB read | floor us | tessel us | tessel % of copy "
          "| plan (heads/subgroup heads/splits, nwg) | best PyTorch us (backend) | PyTorch % of copy | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    key = lambda r: (r["batch"], r["heads"], r["kv_heads"], r["dim"], r["length"])
    for t in (r for r in rows if r["kind"] == "decode_f16" and r["default_plan"] == 1):
        peers = [r for r in rows if r["kind"] == "sdpa" and key(r) == key(t)]
        best = min(peers, key=lambda r: r["median_us"]) if peers else None
        floor = t["bytes"] / (copy * 1e3)
        line = (f"| {key(t)} | {t['bytes'] / 1e6:.1f} | {floor:.1f} | {t['median_us']:.1f} "
                f"| {100 * t['copy_fraction']:.0f}% | {plan(t)} ")
        if best:
            line += (f"| {best['median_us']:.1f} ({best['backend']}) "
                     f"| {100 * best['bytes'] / (best['median_us'] * 1e3) / copy:.0f}% "
                     f"| {best['median_us'] / t['median_us']:.2f}x |")
        else:
            line += "| - | - | - |"
        print(line)

    swept = [r for r in rows if r["kind"] == "decode_f16" and r["default_plan"] == 0]
    shapes = sorted({key(r) for r in swept})
    if len(swept) > len(shapes):
        print("\n| shape (B, H, Hkv, D, L) | fastest tilings (heads/subgroup heads/splits, nwg): us, % of copy |")
        print("|---|---|")
        for shape in shapes:
            best = sorted((r for r in swept if key(r) == shape), key=lambda r: r["median_us"])[:4]
            print(f"| {shape} | " + "; ".join(
                f"{plan(r)}: {r['median_us']:.1f}, {100 * r['copy_fraction']:.0f}%" for r in best) + " |")


if __name__ == "__main__":
    main()
