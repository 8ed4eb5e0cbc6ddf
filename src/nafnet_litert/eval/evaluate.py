"""Run a restoration callable over (blurred, sharp) pairs and score it the way the NAFNet paper did.

Per image: the blurred input itself is scored against the sharp target (the *baseline*), then the
restored output (8-bit, as BasicSR's ``tensor2img``) is scored against it (the *model*): PSNR, the
paper's 3-D SSIM and the standard per-channel SSIM (see :mod:`.metrics`).  Means are plain means of the
per-image values, as BasicSR averages them.
"""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ..errors import EvalError
from ..jsonsafe import dumps
from ..io.files import atomic_write_all, atomic_write_text
from ..io.image import read_photo, write_photo
from ..io.datasets import DatasetError, Pair
from ..metrics import psnr, ssim_basicsr3d, ssim_standard, to_uint8

Restore = Callable[[np.ndarray], np.ndarray]

COLUMNS = (
    "name",
    "baseline_psnr",
    "model_psnr",
    "delta_psnr",
    "baseline_ssim3d",
    "model_ssim3d",
    "baseline_ssim",
    "model_ssim",
    "seconds",
)
_METRICS = COLUMNS[1:]
MEAN_NAME = "MEAN"

CONVENTIONS = {
    "images": "8-bit: clamp [0,1], *255 in float32, round half-to-even (BasicSR tensor2img)",
    "psnr": "RGB, crop_border 0, peak 255, float64 (BasicSR calculate_psnr)",
    "ssim3d": "BasicSR _ssim_3d: HxWxC volume, 11x11x11 Gaussian sigma 1.5, replicate padding 5 on every "
    "axis, mean of the full map, float64 (the NAFNet paper's SSIM)",
    "ssim": "per-channel 11x11 Gaussian SSIM sigma 1.5, 5-px border excluded, channel mean "
    "(= skimage structural_similarity gaussian_weights=True, use_sample_covariance=False)",
    "seconds": "wall time of the restore call per image",
}


@dataclass
class EvalResult:
    rows: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def mean(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": MEAN_NAME}
        for k in _METRICS:
            out[k] = float(np.mean([r[k] for r in self.rows])) if self.rows else math.nan
        return out

    @property
    def mean_rows(self) -> list[dict[str, Any]]:
        return [self.mean]

    # -- serialisation -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": len(self.rows),
            "conventions": CONVENTIONS,
            "meta": self.meta,
            "mean": self.mean,
            "images": self.rows,
        }

    def json_text(self) -> str:
        return dumps(self.to_dict())

    def csv_text(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(COLUMNS)
        for r in [*self.rows, self.mean]:
            w.writerow([r["name"], *(repr(float(r[k])) for k in _METRICS)])
        return buf.getvalue()

    def to_markdown(self) -> str:
        head = (
            "| image | baseline PSNR | model PSNR | ΔPSNR | baseline SSIM3d | model SSIM3d "
            "| baseline SSIM | model SSIM |"
        )
        lines = [head, "|" + "---|" * 8]
        for r in self.rows:
            lines.append(_md_row(r["name"], r))
        m = self.mean
        lines.append(_md_row(f"**mean ({len(self.rows)})**", m))
        text = "\n".join(lines) + "\n"
        if self.rows:
            text += f"\nmodel time: {m['seconds']:.3f} s/image (mean over {len(self.rows)} images)\n"
        return text

    def to_json(self, path: str | Path) -> Path:
        return atomic_write_text(Path(path), self.json_text())

    def to_csv(self, path: str | Path) -> Path:
        return atomic_write_text(Path(path), self.csv_text())

    def write(self, out_dir: str | Path, stem: str) -> dict[str, Path]:
        """Write ``stem.json``, ``stem.csv`` and ``stem.md`` into ``out_dir`` (created if needed), each
        through a temporary file, all three replaced only once all are written: no reader ever sees a half-written
        report, and a full disk leaves the previous three as they were."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / f"{stem}.json", "csv": out / f"{stem}.csv", "markdown": out / f"{stem}.md"}
        texts = {"json": self.json_text(), "csv": self.csv_text(), "markdown": self.to_markdown()}
        atomic_write_all({paths[k]: texts[k].encode("utf-8") for k in paths})
        return paths


def _fmt(x: float, spec: str) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if math.isnan(x):
        return "nan"
    return format(x, spec)


def _md_row(label: str, r: dict[str, Any]) -> str:
    cells = [
        label.replace("|", "\\|"),
        _fmt(r["baseline_psnr"], ".4f"),
        _fmt(r["model_psnr"], ".4f"),
        _fmt(r["delta_psnr"], "+.4f"),
        _fmt(r["baseline_ssim3d"], ".4f"),
        _fmt(r["model_ssim3d"], ".4f"),
        _fmt(r["baseline_ssim"], ".4f"),
        _fmt(r["model_ssim"], ".4f"),
    ]
    return "| " + " | ".join(cells) + " |"



def _scores(out_u8: np.ndarray, sharp_u8: np.ndarray) -> tuple[float, float, float]:
    return psnr(out_u8, sharp_u8), ssim_basicsr3d(out_u8, sharp_u8), ssim_standard(out_u8, sharp_u8)


def evaluate(
    restore: Restore, pairs: Iterable[Pair], progress: bool = True, save: Path | None = None
) -> EvalResult:
    """Score ``restore`` (float32 H x W x 3 in [0, 1] -> float32 H x W x 3, unclamped allowed; a
    :class:`~nafnet_litert.restore.Restorer`) on ``pairs`` (from :func:`.dataset.find_pairs`).  Images are read
    by the package's one reader (16 bits kept; metrics then use 8 bits, as BasicSR did).  ``save``: a folder to
    write each restored image to as ``NAME.png`` (its relative path, ``/`` -> ``__``) at the input's bit depth.
    The progress bar goes to stderr."""
    from tqdm import tqdm

    pairs = list(pairs)
    rows: list[dict[str, Any]] = []
    bar = tqdm(pairs, desc="eval", unit="img", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    for pair in bar:
        blur_photo, sharp_photo = read_photo(pair.blur_path), read_photo(pair.sharp_path)
        blur, sharp = blur_photo.rgb_float(), sharp_photo.rgb_float()
        kinds = ["gray" if p.color.shape[2] == 1 else "colour" for p in (blur_photo, sharp_photo)]
        if kinds[0] != kinds[1]:
            tqdm.write(f"{pair.name}: the blurred image is {kinds[0]} and the sharp one {kinds[1]}: both are scored "
                       "as RGB (gray repeated in R, G and B)", file=sys.stderr)  # fmt: skip
        if blur.shape != sharp.shape:
            raise DatasetError(f"{pair.name}: blurred {blur.shape[:2]} and sharp {sharp.shape[:2]} sizes differ")
        blur_u8, sharp_u8 = to_uint8(blur), to_uint8(sharp)

        t0 = time.perf_counter()
        out = restore(blur)
        seconds = time.perf_counter() - t0
        out = np.asarray(out)
        if out.shape != sharp.shape:
            raise EvalError(f"{pair.name}: restore returned shape {out.shape}, expected {sharp.shape}")
        if not np.issubdtype(out.dtype, np.floating):
            raise EvalError(f"{pair.name}: restore returned dtype {out.dtype}, expected float in [0, 1]")
        if save is not None:
            stem = Path(pair.name.replace("/", "__")).with_suffix("").name
            write_photo(blur_photo.with_color(out), Path(save) / f"{stem}.png")

        b_psnr, b_ssim3d, b_ssim = _scores(blur_u8, sharp_u8)
        m_psnr, m_ssim3d, m_ssim = _scores(to_uint8(out), sharp_u8)
        rows.append(
            {
                "name": pair.name,
                "baseline_psnr": b_psnr,
                "model_psnr": m_psnr,
                "delta_psnr": m_psnr - b_psnr,
                "baseline_ssim3d": b_ssim3d,
                "model_ssim3d": m_ssim3d,
                "baseline_ssim": b_ssim,
                "model_ssim": m_ssim,
                "seconds": seconds,
            }
        )
        if progress:
            bar.set_postfix(psnr=f"{np.mean([r['model_psnr'] for r in rows]):.3f}", refresh=False)
    bar.close()
    return EvalResult(rows)
