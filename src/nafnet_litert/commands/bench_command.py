"""``nafnet-litert bench``: PyTorch vs ONNX Runtime vs LiteRT, and the machine's GEMM floor, in one run."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from ..bench import __doc__ as doc
    from ..bench import add_arguments

    p = sub.add_parser(
        "bench",
        help="benchmark PyTorch, ONNX Runtime and LiteRT against the machine's GEMM floor",
        description=doc.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..bench import run_from_args

    return run_from_args(args)
