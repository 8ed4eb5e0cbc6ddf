"""``nafnet-litert eval --data DIR --model default|CKPT|model.tflite [--backend torch|litert]``"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from .common import add_restore_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="PSNR/SSIM on blur/sharp pairs exactly as the NAFNet paper (BasicSR) computes them",
        description="Evaluate a model on a GoPro-layout folder ([*/]blur + [*/]sharp, or input + target): "
        "output clamped to [0,1], x255, rounded to uint8; PSNR over RGB; SSIM both BasicSR's 3-D variant and "
        "standard per-channel. Writes JSON, CSV and a markdown table, with a blurry-input baseline row.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", required=True, help="folder in GoPro layout")
    p.add_argument("--model", default="default", help="default, a checkpoint, random:PRESET, or a .tflite")
    add_restore_arguments(p)
    p.add_argument("-o", "--out", default=".", help="folder for the JSON/CSV/markdown results")
    p.add_argument("--name", help="file stem of the results (default: from model and backend)")
    p.add_argument("--save", metavar="DIR", help="also write each restored image (PNG, the input's bit depth) here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import NafnetLitertError
    from ..eval import evaluate, find_pairs
    from ..restore import Restorer
    from .common import restore_options

    from ..io.files import check_writable

    if args.name and (Path(args.name).name != args.name or args.name in (".", "..")):
        raise NafnetLitertError(f"--name is a file stem, not a path: {args.name!r} (use -o for the folder)")
    pairs = find_pairs(args.data)
    out = Path(args.out)
    if not out.is_dir():
        raise NafnetLitertError(f"output folder does not exist: {out}")
    check_writable(out)
    save = Path(args.save) if args.save else None
    if save is not None and not save.is_dir():
        raise NafnetLitertError(f"--save folder does not exist: {save}")
    if save is not None:
        check_writable(save, "--save folder")
    with Restorer(args.model, restore_options(args)) as restore:
        result = evaluate(restore, pairs, progress=not args.quiet, save=save)
    backend = "litert" if str(args.model).endswith(".tflite") else args.backend
    stem = args.name
    if not stem:  # from the model and backend (and the weight precision of an export made here)
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"eval_{Path(str(args.model)).stem}_{backend}")
        if backend == "litert" and not str(args.model).endswith(".tflite"):
            stem += f"_{args.precision}"
    result.meta.update(
        {"model": str(args.model), "runner": getattr(restore, "name", backend), "data": str(args.data)}
    )
    files = result.write(out, stem)
    print(f"{restore.name} on {len(pairs)} pairs from {args.data}")
    print(result.to_markdown())
    print("wrote " + ", ".join(str(p) for p in files.values()))
    return 0
