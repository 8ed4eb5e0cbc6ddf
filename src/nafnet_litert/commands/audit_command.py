"""``nafnet-litert audit model.tflite [--reference CKPT --image photo.png]``"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


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
    p.add_argument("--fp16", action="store_true", help="fp16 headroom and emulation (real and stress weights)")
    p.add_argument("--report", help="write a self-contained HTML report here")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for the LiteRT run")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..audit import audit
    from ..checkpoint import resolve_checkpoint
    from ..errors import NafnetLitertError
    from ..report import format_fp16_text, fp16_audit, render_html, write_html
    from ..runtime.litert import read_sidecar

    if bool(args.reference) != bool(args.image):
        raise NafnetLitertError("--reference and --image go together (parity needs both)")
    if args.fp16 and not args.reference:
        raise NafnetLitertError("--fp16 needs --reference and --image (the weights and a real photo to measure)")
    if args.report and not Path(args.report).parent.is_dir():
        raise NafnetLitertError(f"report folder does not exist: {Path(args.report).parent}")
    ref = resolve_checkpoint(args.reference) if args.reference else None
    report = audit(args.model, ref, args.image, gpu=args.gpu, threads=args.threads)
    fp16 = fp16_audit(ref, args.image[0]) if args.fp16 else None
    passed = report.passed and (fp16 is None or fp16["passed"])
    if args.json:
        d = report.to_dict()
        if fp16:
            d["fp16"] = {k: v for k, v in fp16.items() if k != "evidence_png"}
        d["passed"] = passed
        print(json.dumps(d, indent=2))
    else:
        print(report.format_text())
        if fp16:
            print(format_fp16_text(fp16))
    if args.report:
        before_after = _before_after(args.model, args.image[0], args.threads) if args.image else None
        write_html(args.report, render_html(report, fp16, before_after, read_sidecar(args.model)))
        if not args.json:
            print(f"report       {args.report}")
    return 0 if passed else 1


def _before_after(model: str, image: str, threads: int):
    from ..images import fit_to_size, from_nchw, load_image, to_nchw
    from ..runtime import LiteRTModel

    m = LiteRTModel(model, "cpu", threads)
    img = fit_to_size(load_image(image, m.io.channels), m.size)
    out = from_nchw(m.run(to_nchw(img)))
    m.close()
    return img, out, Path(image).name
