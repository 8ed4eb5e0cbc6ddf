"""The demo: bundled model -> LiteRT -> audit -> deblur a real motion-blurred photo. Nothing to download.

The photo is ``clock_motion.png`` from scikit-image's wheel: a real camera-motion-blurred photograph (grayscale,
400x300). The model is exported at the photo's own (padded) size, so no resizing or cropping happens.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import NafnetLitertError


def demo_photo() -> Path:
    try:
        import skimage
    except ImportError:  # pragma: no cover - scikit-image is a dependency
        raise NafnetLitertError("scikit-image is needed for the demo photo: pip install scikit-image") from None
    p = Path(skimage.__file__).parent / "data" / "clock_motion.png"
    if not p.is_file():
        raise NafnetLitertError(f"scikit-image's demo photo is missing: {p}")
    return p


@dataclass
class DemoResult:
    out_dir: Path
    summary: dict

    def format_text(self) -> str:
        s = self.summary
        a = s["audit"]
        lines = [
            f"model      {s['model']} ({s['architecture']}, {s['parameters']:,} parameters)",
            f"exported   {s['tflite']} ({s['tflite_mb']:.2f} MB, fp16, {s['size']}) in {s['convert_seconds']} s",
            f"audit      {a['node_count']} nodes, every op phone-proven: "
            f"{'yes' if not (a['rejected_ops'] or a['unproven_ops'] or a['rejected_forms']) else 'NO'}, "
            f"max rank {a['max_rank']} -> GPU-clean: {'yes' if a['gpu_clean'] else 'NO'}",
            f"parity     LiteRT fp16 vs PyTorch on the photo: corr {s['parity']['corr']:.6f}, "
            f"max abs {s['parity']['max_abs']:.2g}, PSNR {s['parity']['psnr']:.1f} dB",
            f"deblurred  {s['photo']} ({s['photo_size']}) in {s['litert_seconds']:.2f} s with LiteRT XNNPACK "
            f"({s['threads']} threads)",
            f"sharpness  mean gradient magnitude {s['sharpness_before']:.4f} -> {s['sharpness_after']:.4f}",
            f"wrote      {', '.join(s['files'])} in {self.out_dir}",
        ]
        return "\n".join(lines)


def _sharpness(gray: np.ndarray) -> float:
    gy, gx = np.gradient(gray.astype(np.float64))
    return float(np.mean(np.hypot(gx, gy)))


def run_demo(
    out_dir: str | Path = "nafnet-demo", threads: int = 2, model: str = "default", image: str | Path | None = None
) -> DemoResult:
    import torch

    from .audit import parity_metrics, static_audit
    from .checkpoint import resolve_checkpoint
    from .export import export
    from .images import load_image, pad_to_multiple, save_image, to_nchw
    from .runtime import LiteRTModel

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = resolve_checkpoint(model)
    photo = Path(image) if image else demo_photo()
    img = load_image(photo, 3)
    h, w = img.shape[:2]
    padded = pad_to_multiple(img, ckpt.config.padder_size)
    ph, pw = padded.shape[:2]

    tflite = out / f"{Path(ckpt.path).stem if ckpt.path else 'model'}_{ph}x{pw}_fp16.tflite"
    res = export(ckpt, tflite, (ph, pw), "fp16")
    st = static_audit(tflite).summary()

    lite = LiteRTModel(tflite, "cpu", threads)
    x = to_nchw(padded)
    lite.run(x)  # warm-up
    t0 = time.perf_counter()
    y_lite = lite.run(x)
    seconds = time.perf_counter() - t0
    lite.close()
    with torch.inference_mode():
        y_torch = ckpt.build_reference()(torch.from_numpy(x)).numpy()
    parity = parity_metrics(y_lite, y_torch)

    after = np.clip(y_lite[0].transpose(1, 2, 0)[:h, :w], 0, 1)
    gray_in, gray_out = img.mean(axis=2), after.mean(axis=2)
    before_p, after_p, compare_p = out / "before.png", out / "after.png", out / "compare.png"
    save_image(gray_in[:, :, None], before_p)
    save_image(gray_out[:, :, None], after_p)
    gap = np.ones((h, 8, 1), np.float32)
    save_image(np.concatenate([gray_in[:, :, None], gap, gray_out[:, :, None]], axis=1), compare_p)

    summary = {
        "model": model if not ckpt.path else ckpt.path.name,
        "architecture": ckpt.config.describe(),
        "parameters": sum(v.numel() for v in ckpt.state_dict.values()),
        "tflite": tflite.name,
        "tflite_mb": res.sidecar["file_size"] / 1e6,
        "size": f"{ph}x{pw}",
        "convert_seconds": res.sidecar["convert_seconds"],
        "audit": {
            k: st[k]
            for k in ("node_count", "rejected_ops", "rejected_forms", "unproven_ops", "max_rank", "gpu_clean", "transpose_count")
        },
        "parity": parity,
        "photo": f"scikit-image {photo.name} (real camera-motion blur)" if not image else photo.name,
        "photo_size": f"{w}x{h}",
        "threads": threads,
        "litert_seconds": seconds,
        "sharpness_before": _sharpness(gray_in),
        "sharpness_after": _sharpness(gray_out),
        "files": [p.name for p in (before_p, after_p, compare_p, tflite)] + ["summary.json"],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return DemoResult(out, summary)
