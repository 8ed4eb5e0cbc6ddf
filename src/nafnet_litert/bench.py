"""Benchmark (not a test): PyTorch eager (reference and deploy) vs LiteRT XNNPACK fp32/fp16 at 1 and 2 threads.

    python -m nafnet_litert.bench [CKPT|random:GoPro-width32] [--size 256] [--runs 7] [--json out.json]

Every figure comes from one run on one machine: median of ``--runs`` timed runs after warm-up. Ratios (to the
PyTorch reference at the same thread count) are the result; absolute times depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _median_ms(fn, runs: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def run_bench(spec: str, size: int | tuple[int, int] = 256, runs: int = 7, threads=(1, 2), workdir=None) -> list[dict]:
    from .checkpoint import resolve_checkpoint
    from .export import export, parse_size
    from .model.deploy import to_deploy
    from .runtime import LiteRTModel

    h, w = parse_size(size)
    ck = resolve_checkpoint(spec)
    ref = ck.build_reference()
    dep = to_deploy(ref)
    x = torch.rand(1, ck.config.img_channel, h, w, generator=torch.Generator().manual_seed(0))
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        models = {p: export(ck, Path(tmp) / f"m_{p}.tflite", (h, w), p).model_path for p in ("fp32", "fp16")}
        for n in threads:
            torch.set_num_threads(n)
            with torch.inference_mode():
                rows.append({"backend": "PyTorch eager (reference)", "threads": n, "ms": _median_ms(lambda: ref(x), runs)})
                rows.append({"backend": "PyTorch eager (deploy)", "threads": n, "ms": _median_ms(lambda: dep(x), runs)})
            xn = x.numpy()
            for p, path in models.items():
                m = LiteRTModel(path, "cpu", threads=n)
                rows.append({"backend": f"LiteRT XNNPACK {p}", "threads": n, "ms": _median_ms(lambda: m.run(xn), runs)})
                m.close()
    for r in rows:
        base = next(b for b in rows if b["threads"] == r["threads"] and b["backend"].endswith("(reference)"))
        r["vs_torch_reference"] = r["ms"] / base["ms"]
        r["size"] = f"{h}x{w}"
        r["model"] = ck.config.describe()
    return rows


def format_table(rows: list[dict]) -> str:
    out = [f"{'backend':30s} {'threads':>7s} {'median ms':>10s} {'x torch ref':>11s}"]
    for r in rows:
        out.append(f"{r['backend']:30s} {r['threads']:>7d} {r['ms']:>10.1f} {r['vs_torch_reference']:>11.2f}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nafnet_litert.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", nargs="?", default="random:GoPro-width32")
    ap.add_argument("--size", default="256")
    ap.add_argument("--runs", type=int, default=7, help="timed runs per backend (median reported; >= 5)")
    ap.add_argument("--json", help="also write the rows as JSON")
    a = ap.parse_args(argv)
    if a.runs < 5:
        ap.error("--runs must be at least 5")
    rows = run_bench(a.checkpoint, a.size, a.runs)
    print(f"{rows[0]['model']} at {rows[0]['size']}, median of {a.runs} runs; machine: {_cpu_name()}")
    print(format_table(rows))
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


if __name__ == "__main__":
    sys.exit(main())
