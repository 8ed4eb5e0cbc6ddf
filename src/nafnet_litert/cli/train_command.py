"""``nafnet-litert train --data DIR [--synthetic-blur DIR|bundled] --config small --steps N -o model.safetensors``"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a (small) NAFNet in PyTorch on paired and synthetic motion blur",
        description="Train with the paper's PSNR loss, AdamW and a cosine schedule on random crops/flips of paired "
        "folders (GoPro layout) and of sharp images blurred on the fly. Resumable (<out>.state.pt), "
        "deterministic with --seed.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", action="append", default=[], help="paired folder, GoPro layout (repeatable)")
    p.add_argument(
        "--synthetic-blur",
        action="append",
        default=[],
        help="folder of sharp images to blur on the fly, or 'bundled' for scikit-image's photos (repeatable)",
    )
    p.add_argument("--config", default="small", help="small, tiny, or an official preset name")
    p.add_argument("--steps", type=int, required=True, help="total optimisation steps")
    p.add_argument("-o", "--out", required=True, help="output .safetensors (fp16 weights)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--real-fraction", type=float, default=0.5, help="share of each batch from real pairs")
    p.add_argument("--val", help="paired folder for validation PSNR")
    p.add_argument("--val-every", type=int, default=1000)
    p.add_argument("--save-every", type=int, default=500, help="steps between resumable state saves")
    p.add_argument("--no-resume", dest="resume", action="store_false", help="ignore an existing <out>.state.pt")
    p.add_argument("--init", help="checkpoint to fine-tune from")
    p.add_argument(
        "--compile", dest="compiled", action="store_true", help="torch.compile the training step (~12%% faster)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..train import train_main

    res = train_main(args)
    print(
        f"{'finished' if res.finished else 'stopped'} at step {res.step} in {res.seconds / 60:.1f} min; "
        f"weights: {args.out}" + (f"; validation PSNR {res.val_psnr:.2f} dB" if res.val_psnr is not None else "")
    )
    return 0
