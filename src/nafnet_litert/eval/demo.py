"""The demo: bundled model -> LiteRT -> audit -> deblur a real motion-blurred photo with its sharp ground truth.

The photo is a 320x240 crop of a held-out frame of the GoPro deblurring dataset (Nah et al., CVPR 2017; never seen
in training): the real camera-motion-blurred crop and the sharp frame it was averaged around (``assets/``). It goes
through the package's one :class:`~nafnet_litert.restore.Restorer`, exactly as ``deblur`` runs it: LiteRT fp16,
256 px tiles. The tile model it runs is the file that is audited and written out; the same tiles through PyTorch
check parity. With ``image=`` a user's own photo is used instead (no ground truth, so no PSNR).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import NafnetLitertError
from ..jsonsafe import dumps

ASSETS = Path(str(resources.files("nafnet_litert") / "assets"))
DEMO_BLUR = ASSETS / "gopro_demo_blur.png"
DEMO_SHARP = ASSETS / "gopro_demo_sharp.png"
ATTRIBUTION = "GoPro dataset, Nah et al., CVPR 2017 (CC BY 4.0)"


@dataclass
class DemoResult:
    out_dir: Path
    summary: dict

    def format_text(self) -> str:
        s = self.summary
        a = s["audit"]
        q = s.get("quality")
        lines = [
            f"model      {s['model']} ({s['architecture']}, {s['parameters']:,} parameters)",
            f"exported   {s['tflite']} ({s['tflite_mb']:.2f} MB, fp16, {s['size']} tiles)",
            f"audit      {a['node_count']} nodes, every op phone-proven: "
            f"{'yes' if not (a['rejected_ops'] or a['unproven_ops'] or a['rejected_forms']) else 'NO'}, "
            f"max rank {a['max_rank']} -> GPU-clean: {'yes' if a['gpu_clean'] else 'NO'}",
            f"parity     LiteRT fp16 vs PyTorch, same tiles: corr {s['parity']['corr']:.6f}, "
            f"max abs {s['parity']['max_abs']:.2g}",
            f"deblurred  {s['photo']} ({s['photo_size']}) in {s['litert_seconds']:.2f} s, {s['tiles']} tile(s), "
            f"LiteRT XNNPACK ({s['threads']} threads)",
        ]
        if q:
            lines.append(
                f"quality    vs the sharp frame: PSNR {q['blurry_psnr']:.2f} -> {q['restored_psnr']:.2f} dB "
                f"({q['restored_psnr'] - q['blurry_psnr']:+.2f}), SSIM {q['blurry_ssim']:.4f} -> {q['restored_ssim']:.4f}"
            )
        lines.append(f"wrote      {', '.join(s['files'])} in {self.out_dir}")
        if q:
            lines.append(f"photo      {ATTRIBUTION}")
        return "\n".join(lines)


def run_demo(
    out_dir: str | Path = "nafnet-demo", threads: int = 2, model: str = "default", image: str | Path | None = None
) -> DemoResult:
    from ..verify.parity import parity_metrics
    from ..models.checkpoint import resolve_checkpoint
    from ..litert.static_audit import static_audit
    from ..io.files import atomic_path, atomic_write_text
    from ..io.image import read_photo, side_by_side, write_photo
    from ..photo import Photo
    from ..metrics import psnr, ssim_standard, to_uint8
    from ..restore import Restorer

    ckpt = resolve_checkpoint(model)
    blurry = read_photo(image if image else DEMO_BLUR)  # bad input fails before anything is written
    sharp = None if image else read_photo(DEMO_SHARP)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NafnetLitertError(f"cannot create the output folder {out} ({e.strerror})") from None
    h, w = blurry.color.shape[:2]

    with Restorer(ckpt, threads=threads) as lite:
        lite.restore_photo(blurry)  # first run: export (cached) + compile
        t0 = time.perf_counter()
        rgb_lite = lite.restore(blurry.rgb_float())
        seconds = time.perf_counter() - t0
        tflite = lite.model_files[0]
        tiles = lite.tiles_for(h, w)
        tile = lite.options.tile
    with Restorer(ckpt, backend="torch", threads=threads) as ref:
        rgb_torch = ref.restore(blurry.rgb_float())
    parity = parity_metrics(rgb_lite, rgb_torch)
    restored = blurry.with_color(rgb_lite)

    shipped = out / f"{Path(ckpt.path).stem if ckpt.path else 'model'}_{tile}x{tile}_fp16.tflite"
    for src, dst in ((tflite, shipped), (tflite.with_suffix(".json"), shipped.with_suffix(".json"))):
        if src.is_file():
            with atomic_path(dst) as tmp:
                shutil.copyfile(src, tmp)
    st = static_audit(shipped).summary()

    panels = [blurry, restored] + ([sharp] if sharp else [])
    files = {"blurry.png": blurry, "restored.png": restored, "compare.png": side_by_side(*panels)}
    if sharp:
        files["sharp.png"] = sharp
    for name, photo in files.items():
        write_photo(Photo(photo.color, photo.alpha, photo.icc), out / name)

    quality = None
    if sharp:
        s8 = to_uint8(sharp.rgb_float())
        b8, r8 = to_uint8(blurry.rgb_float()), to_uint8(np.clip(rgb_lite, 0, 1))
        quality = {
            "blurry_psnr": psnr(b8, s8), "restored_psnr": psnr(r8, s8),
            "blurry_ssim": ssim_standard(b8, s8), "restored_ssim": ssim_standard(r8, s8),
        }  # fmt: skip
    summary = {
        "model": model if not ckpt.path else ckpt.path.name,
        "architecture": ckpt.config.describe(),
        "parameters": sum(v.numel() for v in ckpt.state_dict.values()),
        "tflite": shipped.name,
        "tflite_mb": shipped.stat().st_size / 1e6,
        "size": f"{tile}x{tile}",
        "audit": {
            k: st[k]
            for k in ("node_count", "rejected_ops", "rejected_forms", "unproven_ops", "max_rank", "gpu_clean", "transpose_count")
        },
        "parity": parity,
        "photo": f"GoPro crop (real camera-motion blur, held out; {ATTRIBUTION})" if not image else Path(image).name,
        "photo_size": f"{w}x{h}",
        "tiles": tiles,
        "threads": threads,
        "litert_seconds": seconds,
        "quality": quality,
        "files": sorted(files) + [shipped.name, "summary.json"],
    }
    atomic_write_text(out / "summary.json", dumps(summary))
    return DemoResult(out, summary)
