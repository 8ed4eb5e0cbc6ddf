"""``nafnet-litert audit model.tflite [--reference CKPT --image photo.png]``"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit",
        help="prove a .tflite is GPU-clean and numerically the reference network",
        description="Static graph audit (node count, op histogram, banned ops, tensor ranks, signature); with "
        "--reference and --image, parity of LiteRT against the PyTorch reference on real photos. "
        "Exit status 0 only if the model is GPU-clean and parity holds.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("model", help=".tflite file")
    p.add_argument("--reference", help="checkpoint the model was exported from (or random:PRESET[@SEED])")
    p.add_argument("--image", action="append", default=[], help="real photo for parity (repeatable)")
    p.add_argument("--gpu", action="store_true", help="also run on LiteRT's GPU accelerator alone (residency)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for the LiteRT run")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..audit import audit
    from ..checkpoint import resolve_checkpoint
    from ..errors import NafnetLitertError

    if bool(args.reference) != bool(args.image):
        raise NafnetLitertError("--reference and --image go together (parity needs both)")
    ref = resolve_checkpoint(args.reference) if args.reference else None
    report = audit(args.model, ref, args.image, gpu=args.gpu, threads=args.threads)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.format_text())
    return 0 if report.passed else 1
