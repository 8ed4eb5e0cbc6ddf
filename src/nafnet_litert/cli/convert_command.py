"""``nafnet-litert convert CKPT -o model.tflite``"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..facts import LAYOUTS, PRECISIONS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="export a NAFNet checkpoint to an exact, GPU-clean .tflite",
        description="Export a NAFNet checkpoint (.pth/.safetensors, or random:PRESET for a structure-only "
        "network) to a fixed-size LiteRT model, with a sidecar JSON beside it.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("checkpoint", help="checkpoint file, or random:GoPro-width32[@SEED] (structure only)")
    p.add_argument("-o", "--output", required=True, help="output .tflite path")
    p.add_argument("--size", default="256", help="input size: N or HxW, a multiple of 2^levels (16)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp16", help="weight precision")
    p.add_argument("--nhwc", action="store_true", help="NHWC [1,H,W,3] input/output instead of NCHW [1,3,H,W]")
    p.add_argument(
        "--scale",
        default="auto",
        help="LayerNorm statistics scale: 'auto' (per level, calibrated on real photos), or one power of 2 for "
        "every level",
    )
    p.add_argument("--tlc", action="store_true", help="TLC local channel-attention pooling (megvii NAFNetLocal)")
    p.add_argument("--tlc-train-size", type=int, default=256, help="with --tlc: the checkpoint's training crop size")
    p.add_argument("--no-lean", dest="lean", action="store_false", help="keep scales/affines unfolded (larger graph)")
    p.add_argument(
        "--native-ops",
        action="store_true",
        help="SPLIT and DEPTH_TO_SPACE (fewer nodes) for desktop/browser WebGPU only: phones are documented to "
        "reject both, so the audit fails such a model",
    )
    p.add_argument(
        "--straight",
        action="store_true",
        help="convert the reference network with no rewrite (a baseline that is not fp16-safe; never ship it)",
    )
    p.add_argument("--json", action="store_true", help="print the sidecar JSON instead of a summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from ..models.checkpoint import resolve_checkpoint
    from ..litert.convert import export

    ckpt = resolve_checkpoint(args.checkpoint)
    res = export(
        ckpt,
        Path(args.output),
        size=args.size,
        precision=args.precision,
        layout=LAYOUTS[1] if args.nhwc else LAYOUTS[0],
        scale=_scale(args.scale),
        tlc=args.tlc,
        tlc_train_size=args.tlc_train_size,
        lean=args.lean,
        native_ops=args.native_ops,
        straight=args.straight,
    )
    s = res.sidecar
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    a = s["audit"]
    src = ckpt.path.name if ckpt.path else f"{args.checkpoint} (random weights: structure only, does not deblur)"
    print(f"{src}: {s['architecture']}")
    print(
        f"wrote {res.model_path} ({s['file_size'] / 1e6:.2f} MB, {s['precision']}, {s['layout']} "
        f"{s['size']['height']}x{s['size']['width']}) in {s['convert_seconds']} s"
    )
    print(
        f"graph: {a['node_count']} nodes ({a['node_count_without_dequantize']} without DEQUANTIZE), "
        f"{a['transpose_count']} TRANSPOSE, max rank {a['max_rank']}, ops outside the phone-proven set: "
        f"{_outside(a) or 'none'} -> phone-GPU-clean: {'yes' if a['gpu_clean'] else 'NO'}"
    )
    if a.get("unproven_forms"):
        from ..litert.device_ops import FORMS

        names = ", ".join(f"{FORMS[f].ops} x{n}" for f, n in a["unproven_forms"].items())
        print(f"forms no published phone graph contains (listed, not failed; see audit): {names}")
    if s["tlc"]:
        pools = ", ".join(f"L{v['level']} {v['kernel'][0]}x{v['kernel'][1]} {v['pool']}" for v in s["tlc"]["levels"])
        print(f"TLC (train size {s['tlc']['train_size']}): {pools}")
    print(f"sidecar: {res.sidecar_path}")
    return 0 if a["gpu_clean"] else 1


def _outside(a: dict) -> str:
    parts = [f"{k} (rejected on phones)" for k in a["rejected_ops"]]
    parts += [f"{k} (rejected form)" for k in a["rejected_forms"]]
    parts += [f"{k} (unproven)" for k in a["unproven_ops"]]
    return ", ".join(parts)


def _scale(text: str):
    """``auto`` or one power of two from 1/256 to 32768 (a power of two only shifts exponents: exact)."""
    import math

    from ..errors import ExportError

    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise ExportError(f"bad --scale {text!r}: use auto or a power of 2 such as 8") from None
    if not (math.isfinite(value) and value > 0 and math.log2(value).is_integer() and -8 <= math.log2(value) <= 15):
        raise ExportError(f"bad --scale {text!r}: use auto or a power of 2 from 1/256 to 32768, such as 8")
    return value
