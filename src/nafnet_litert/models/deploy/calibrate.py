"""Per-level LayerNorm statistics scales, chosen from the checkpoint's own activations on real photos.

Every scale is exact (LayerNorm is scale invariant; powers of two commute with rounding), so the choice only
decides where fp16 holds. Two ends have to stay in range at every LayerNorm, and real fp16 GPU kernels (Mesa
lavapipe through LiteRT's GPU accelerator) show both failing:

* **top:** ``d = x - mean_c(x)`` is squared; ``(d/S)^2`` must stay below 65504. A trained GoPro-w32 bottleneck
  reaches |x| ~ 175, so |d| up to ~350, and S = 1 would overflow there;
* **bottom:** the variance ``mean_c (d/S)^2`` and its ``eps/S^2`` must stay above fp16's subnormal floor
  (6e-8), or RSQRT sees 0 and the output is inf/NaN. At full resolution the stream is small and its channel
  spread can be ~5e-3 (var ~3e-5): one global S = 32 puts that variance at 3e-8, below the floor, and a random
  width-8 network came out all-NaN on lavapipe in fp16; eps/32^2 = 1e-9 is flushed to 0 as well.

No single S serves a stream of |x| ~ 0.1 at full resolution and ~175 at the bottleneck, so each level gets its
own: ``S_l`` is the smallest power of two >= 1 with ``max|d| / S_l <= TARGET`` (64: the squares stay 16x below
65504, which leaves a factor 4 in |d| for photos brighter or sharper than the calibration ones). Levels whose
stream is already small keep S = 1, the reference arithmetic itself, where eps (1e-6) is still an fp16 number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..config import NAFNetConfig
from ..reference import NAFNet
from ..stress import per_level_max, photo_crop

#: max |d| / S_l allowed on the calibration photos.
TARGET = 64.0
#: photos of scikit-image's wheel used for calibration (real camera photos).
CALIBRATION_PHOTOS = ("chelsea.png", "astronaut.png", "coffee.png")


def calibration_photos(config: NAFNetConfig, size: int = 256) -> list[torch.Tensor]:
    """Centre ``size`` crops of :data:`CALIBRATION_PHOTOS` in sizes ``config``'s network takes, NCHW float32 in
    [0, 1] (a 1-channel network: the channel mean)."""
    crops = [photo_crop(name, size, multiple=config.sizes.multiple) for name in CALIBRATION_PHOTOS]
    channels = config.img_channel
    return [t.mean(1, keepdim=True) for t in crops] if channels == 1 else crops


def level_deviation_peaks(model: NAFNet, photos: Sequence[torch.Tensor]) -> list[float]:
    """Per level (0 = full resolution .. the bottleneck), the largest ``|x - mean_c x|`` any LayerNorm of that
    level sees on ``photos``; 0 for a level without blocks."""
    return per_level_max(model, photos, lambda t: (t - t.mean(1, keepdim=True)).abs().max())


def scales_for(peaks: Sequence[float], target: float = TARGET) -> list[float]:
    """The smallest power of two >= 1 per level with ``peak / S <= target``."""
    return [float(2 ** max(0, math.ceil(math.log2(p / target)))) if p > target else 1.0 for p in peaks]


def calibrate_scales(model: NAFNet, target: float = TARGET) -> list[float]:
    """Per-level scales for ``model`` (a reference network) from :func:`calibration_photos`."""
    return scales_for(level_deviation_peaks(model, calibration_photos(model.config)), target)


__all__ = ["CALIBRATION_PHOTOS", "TARGET", "calibrate_scales", "calibration_photos", "level_deviation_peaks", "scales_for"]
