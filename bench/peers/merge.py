#!/usr/bin/env python3
"""Puts tessel's timings next to PyTorch's as the markdown tables of docs/perf/.

    python3 bench/peers/merge.py BENCH.json SDPA.json
        `tessel bench`'s JSON and sdpa.py's: per suite, a table of the issue's
        shapes and one of the length sweep, each shape with its floor, tessel's
        time and fraction of the floor, every PyTorch backend's time, and the
        speed-up over the fastest backend.
    python3 bench/peers/merge.py TESSEL.jsonl SDPA.jsonl
        decode_bench's and sdpa_decode.py's JSON lines: docs/perf/decode_f16.md's
        table (tessel's default plan next to the fastest backend) and, after
        a --sweep, the fastest tilings per shape.
"""
import json
import sys

BACKENDS = ("flash", "efficient", "cudnn", "math")


def load(path):
    """A benchmark document (a dict with "rows"), or a list of JSON lines."""
    text = open(path).read()
    try:
        doc = json.loads(text)
        if isinstance(doc, dict) and "rows" in doc:
            return doc
    except json.JSONDecodeError:
        pass
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def fmt_us(us):
    return f"{us:.1f}" if us < 1000 else f"{us:.0f}"


def merge_bench(tessel, peers):
    copy, matrix = tessel["copy"], tessel["matrix"]
    print(f"Device: {tessel['device']['name']} ({tessel['device']['driver']}). "
          f"Copy bandwidth (read + write) measured by tessel: {copy['gbs']:.0f} GB/s; "
          f"matrix rate: {matrix['fma_tflops']:.1f} TFLOP/s by f32 FMAs"
          + (f", {matrix['coopmat_tflops']:.0f} TFLOP/s by f16 cooperative matrices"
             if matrix.get("coopmat_tflops") else "")
          + f". PyTorch: {peers['device']['driver']}, copy {peers['copy']['gbs']:.0f} GB/s.\n")
    print("Floor: the shape's bytes at the copy bandwidth or its FLOPs at the best matrix "
          "rate, whichever takes longer. \"% of floor\" = floor / median time. "
          "Times are medians of GPU time per call in us.\n")
    key = lambda r: (r["suite"], r["shape"])
    by_shape = {}
    for p in peers["rows"]:
        by_shape.setdefault(key(p), []).append(p)
    suites = []
    for r in tessel["rows"]:
        if r["suite"] not in suites:
            suites.append(r["suite"])
    for suite in suites:
        rows = [r for r in tessel["rows"] if r["suite"] == suite]
        if not any(key(r) in by_shape for r in rows):
            continue
        present = [b for b in BACKENDS
                   if any(p["backend"] == b for r in rows for p in by_shape.get(key(r), []))]
        for set_name, title in (("issue", "the issue's shapes"), ("sweep", "sequence length sweep"),
                                ("custom", "other shapes")):
            chosen = [r for r in rows if r["set"] == set_name]
            if not chosen:
                continue
            print(f"### {suite}: {title}\n")
            print("| kernel | shape | MB | GFLOP | floor us | tessel us (p10-p90) | tessel % of floor | "
                  + " | ".join(f"{b} us" for b in present)
                  + " | best PyTorch % of floor | speed-up |")
            print("|---|---|---|---|---|---|---|" + "---|" * len(present) + "---|---|")
            for r in chosen:
                peer = {p["backend"]: p for p in by_shape.get(key(r), [])}
                best = min(peer.values(), key=lambda p: p["median_us"]) if peer else None
                cells = [r["kernel"], r["shape"], f"{r['bytes'] / 1e6:.1f}",
                         f"{r['flops'] / 1e9:.3g}" if r["flops"] else "-", fmt_us(r["floor_us"]),
                         f"{fmt_us(r['median_us'])} ({fmt_us(r['p10_us'])}-{fmt_us(r['p90_us'])})",
                         f"{100 * r['floor_fraction']:.0f}%"]
                cells += [fmt_us(peer[b]["median_us"]) if b in peer else "-" for b in present]
                if best:
                    cells += [f"{100 * best['floor_fraction']:.0f}% ({best['backend']})",
                              f"{best['median_us'] / r['median_us']:.2f}x"]
                else:
                    cells += ["-", "-"]
                print("| " + " | ".join(cells) + " |")
            print()


def plan(r):
    """An engine tiling (heads/subgroup heads/splits) or the matrix kernel's tiles ("mm"
    positions/subgroups/score split, with its heads per workgroup), and NWG."""
    if r.get("kernel") == "coopmat":
        return f"{r['tiles']} h{r['heads_per_group']}, {r['nwg']}"
    return f"{r['tiles']}, {r['nwg']}"


def merge_decode_bench(rows):
    copy = next(r["gbs"] for r in rows if r["kind"] == "copy")
    device = next(r["device"] for r in rows if r["kind"] == "copy")
    torch_copy = next((r for r in rows if r["kind"] == "torch_copy"), None)
    print(f"Device: {device}. Copy bandwidth (read + write): {copy:.0f} GB/s measured by tessel"
          + (f", {torch_copy['gbs']:.0f} GB/s by PyTorch {torch_copy['torch']}" if torch_copy else "")
          + ". Floor = bytes / copy bandwidth.\n")
    print("| shape (B, H, Hkv, D, L) | MB read | floor us | tessel us | tessel % of copy "
          "| plan (tiles, nwg) | best PyTorch us (backend) | PyTorch % of copy | speed-up |")
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

    swept = [r for r in rows if r["kind"] == "decode_f16" and r["default_plan"] == 0
             and not r.get("warmup")]
    shapes = sorted({key(r) for r in swept})
    if len(swept) > len(shapes):
        print("\n| shape (B, H, Hkv, D, L) | fastest configurations (tiles, nwg): us, % of copy |")
        print("|---|---|")
        for shape in shapes:
            best = sorted((r for r in swept if key(r) == shape), key=lambda r: r["median_us"])[:4]
            print(f"| {shape} | " + "; ".join(
                f"{plan(r)}: {r['median_us']:.1f}, {100 * r['copy_fraction']:.0f}%" for r in best) + " |")


def main():
    docs = [load(path) for path in sys.argv[1:]]
    if len(docs) == 2 and all(isinstance(d, dict) for d in docs):
        tessel, peers = sorted(docs, key=lambda d: d.get("tool") != "tessel bench")
        merge_bench(tessel, peers)
    elif all(isinstance(d, list) for d in docs):
        merge_decode_bench([r for d in docs for r in d])
    else:
        sys.exit("usage: merge.py BENCH.json SDPA.json | merge.py TESSEL.jsonl SDPA.jsonl")


if __name__ == "__main__":
    main()
