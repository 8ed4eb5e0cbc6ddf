"""README's int8 row for random GoPro-w32, measured in one run (a measurement, not a test):

    python scripts/int8_audit.py [--size 256] [--photo chelsea]

Exports the random GoPro-w32 checkpoint the tests use (seed 0) at SIZE in fp32, makes its weight-only int8 file,
and runs the whole audit with ``--gpu`` on a scikit-image photo: file sizes, CPU parity against the PyTorch
reference and its int8 twin, and the GPU accelerator's fp32 and fp16 passes (on lavapipe here, as README says).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import nafnet_litert as nl
from nafnet_litert.litert.convert import quantize_int8
from nafnet_litert.models.checkpoint import random_checkpoint
from nafnet_litert.models.config import PRESETS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--photo", default="chelsea", help="a scikit-image data photo (chelsea, coffee, astronaut)")
    args = ap.parse_args()
    import skimage.data
    from PIL import Image

    ckpt = random_checkpoint(PRESETS["GoPro-width32"], seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        photo = d / f"{args.photo}.png"
        Image.fromarray(getattr(skimage.data, args.photo)()).save(photo)
        t0 = time.perf_counter()
        fp32 = nl.export(ckpt, d / "w32_fp32.tflite", size=args.size, precision="fp32").model_path
        int8 = d / "w32_int8.tflite"
        int8.write_bytes(quantize_int8(fp32.read_bytes()))
        print(f"GoPro-w32 (random, seed 0) at {args.size}: fp32 {fp32.stat().st_size:,} bytes, "
              f"int8 {int8.stat().st_size:,} bytes ({int8.stat().st_size / fp32.stat().st_size:.3f}), "
              f"exported in {time.perf_counter() - t0:.0f} s")  # fmt: skip
        t0 = time.perf_counter()
        report = nl.audit(int8, ckpt, [photo], gpu=True)
        print(report.format_text())
        print(f"audit --gpu: {'pass' if report.passed else 'FAIL'} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
