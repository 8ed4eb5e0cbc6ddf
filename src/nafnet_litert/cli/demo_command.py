"""``nafnet-litert demo``: bundled model -> LiteRT -> audit -> deblur a real blurry photo. Nothing to download."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="convert the bundled model, audit it and deblur a real motion-blurred photo",
        description="Deblurs a real motion-blurred GoPro crop (held out from training) with the bundled model "
        "exactly as `deblur` does (LiteRT fp16, 256 px tiles), audits the tile model it ran, checks it against "
        "PyTorch on the same tiles, and writes blurry | restored | sharp with PSNR/SSIM and a summary.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("-o", "--out", default="nafnet-demo", help="output folder")
    p.add_argument("--model", default="default", help="default, a checkpoint or random:PRESET")
    p.add_argument("--image", help="your own blurry photo instead of the GoPro crop")
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..eval.demo import run_demo

    res = run_demo(args.out, args.threads, args.model, args.image)
    print(res.format_text())
    return 0 if res.summary["audit"]["gpu_clean"] else 1
