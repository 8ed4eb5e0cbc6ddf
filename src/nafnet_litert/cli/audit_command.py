"""``nafnet-litert audit model.tflite [--reference CKPT] [--image photo.png] [--gpu] [--fp16]``, or
``nafnet-litert audit --explain RULE``"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit",
        help="prove a .tflite is phone-GPU-clean and numerically the reference network",
        description="Every check runs on the file itself. Static: every op in the phone-proven table, no rejected "
        "op or form, no tensor above rank 4. With --reference and --image: LiteRT CPU parity against the PyTorch "
        "reference on real photos; --gpu: the GPU accelerator alone in fp32 (enforce_f32) and in fp16 (real fp16 "
        "kernels on a Vulkan device with shaderFloat16); --fp16: per-op fp16 headroom of the file and of its "
        "stressed twin. Without --reference, --gpu and --fp16 judge the GPU against the file's own CPU output. "
        "--explain RULE: why a rule fails a model, its source and the proven form to use instead. "
        "Exit status: 0 all checks pass, 1 a check fails, 2 bad input.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("model", nargs="?", help=".tflite file")
    p.add_argument("--explain", metavar="RULE", help="print a rule's reason, source and proven replacement, and exit")
    p.add_argument("--reference", help="checkpoint the model was exported from (or random:PRESET[@SEED], stress:...)")
    p.add_argument(
        "--image", action="append", default=[], help="real photo for parity and the GPU and fp16 checks (repeatable)"
    )
    p.add_argument("--gpu", action="store_true", help="GPU accelerator alone: an fp32 and a real fp16 pass")
    p.add_argument("--fp16", action="store_true", help="per-op fp16 headroom of the file (and of its stressed twin)")
    p.add_argument("--no-stress", dest="stress", action="store_false", help="with --fp16: skip the stressed twin")
    p.add_argument(
        "--allow-unproven", action="store_true", help="accept ops that no published phone run has used (not rejected)"
    )
    p.add_argument("--report", help="write a self-contained HTML report here")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for the LiteRT run")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..verify.audit import audit
    from ..models.checkpoint import resolve_checkpoint
    from ..errors import NafnetLitertError
    from ..verify.report import render_html, straight_comparison, write_html
    from ..litert.sidecar import read_sidecar

    if args.explain is not None:
        return _explain(args)
    if not args.model:
        raise NafnetLitertError("a .tflite model is needed (or --explain RULE)")
    if args.reference and not args.image:
        raise NafnetLitertError("--reference needs --image (parity runs on real photos)")
    if (args.gpu or args.fp16) and not args.image:
        raise NafnetLitertError("--gpu and --fp16 need --image (a real photo; add --reference for the weights)")
    if args.image and not (args.reference or args.gpu or args.fp16):
        raise NafnetLitertError("--image is for --reference, --gpu or --fp16 (nothing else runs on a photo)")
    if args.threads < 1:
        raise NafnetLitertError(f"--threads must be at least 1, got {args.threads}")
    if args.report and not Path(args.report).parent.is_dir():
        raise NafnetLitertError(f"report folder does not exist: {Path(args.report).parent}")
    if args.report:
        from ..io.files import check_writable

        check_writable(Path(args.report).parent, "report folder")
    for img in args.image:
        if not Path(img).is_file():
            raise NafnetLitertError(f"image not found: {img}")
    ref = resolve_checkpoint(args.reference) if args.reference else None
    report = audit(
        args.model,
        ref,
        args.image,
        gpu=args.gpu,
        fp16=args.fp16,
        threads=args.threads,
        allow_unproven=args.allow_unproven,
        stress=args.stress,
    )
    if args.json:
        print(report.to_json())
    else:
        print(report.format_text())
    if args.report:
        straight = straight_comparison(args.model, ref, report, args.threads) if args.gpu and ref else None
        write_html(args.report, render_html(report, read_sidecar(args.model), straight))
        if not args.json:
            print(f"report        {args.report}")
    return 0 if report.passed else 1



def _explain(args: argparse.Namespace) -> int:
    from ..errors import NafnetLitertError
    from ..litert.device_ops import explain, rules

    if args.model:
        raise NafnetLitertError("--explain RULE takes no model")
    try:
        print(explain(args.explain))
    except KeyError:
        raise NafnetLitertError(f"unknown rule {args.explain!r}; known rules: {', '.join(rules())}") from None
    return 0
