"""``nafnet-litert bench``: PyTorch vs ONNX Runtime vs LiteRT, and the machine's GEMM floor, in one run."""

from __future__ import annotations

import argparse
import sys

from .common import check_json_path, write_json


def register(sub: argparse._SubParsersAction) -> None:
    from ..bench.bench import __doc__ as doc

    p = sub.add_parser(
        "bench",
        help="benchmark PyTorch, ONNX Runtime and LiteRT against the machine's GEMM floor",
        description=(doc or "").split("\n\n")[0],  # no docstring under python -OO
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("checkpoint", nargs="?", default="random:GoPro-width32")
    p.add_argument("--size", default="256")
    p.add_argument("--runs", type=int, default=7, help="timed runs per backend (median reported; >= 5)")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--frame", action="store_true", help="also a 1280x720 frame: tiled 256 model and full-frame TLC")
    p.add_argument("--profile", action="store_true",
                   help="also LiteRT's per-op profile of the fp32 model: by op type, XNNPACK kernel and NAFNet stage")
    p.add_argument("--json", help="also write the results as JSON")
    p.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from ..errors import NafnetLitertError
    from ..bench.bench import format_table, run_bench

    if a.runs < 5:
        raise NafnetLitertError("--runs must be at least 5")
    try:
        threads = tuple(int(t) for t in str(a.threads).split(","))
    except ValueError:
        raise NafnetLitertError(f"--threads must be comma-separated whole numbers such as 1,2, got {a.threads!r}") from None
    if not threads or min(threads) < 1:
        raise NafnetLitertError(f"--threads must be at least 1, got {a.threads!r}")
    check_json_path(a.json)
    res = run_bench(a.checkpoint, a.size, a.runs, threads, a.frame, a.profile, log=lambda m: print(m, file=sys.stderr))
    print(format_table(res))
    write_json(a.json, res)
    return 0
