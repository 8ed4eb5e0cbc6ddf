"""The stressed twin of a NAFNet: the same function, its residual stream k_l times larger at level l.

Trained GoPro-w32 carries |x| ~ 175 at its bottleneck; random or lightly trained weights carry far less, so an
fp16 check on them proves little. NAFNet has no activations and normalises every branch input with a channel
LayerNorm, which is scale invariant. With one factor ``k_l`` per level (0 = full resolution), multiplying

* the weight and bias of ``intro`` by ``k_0``, so the stream leaving it is ``k_0 x``;
* ``beta`` and ``gamma`` of every block of level l by ``k_l``, so each block adds ``k_l`` times its original
  increment (its normalised input is unchanged);
* the weight of the downsampler from level l to l+1 by ``k_(l+1)/k_l`` and its bias by ``k_(l+1)``; the weight
  of the upsampler from level l+1 to l (it has no bias) by ``k_l/k_(l+1)``;

and dividing the weight of ``ending`` by ``k_0`` (its bias and the global input skip are untouched) gives a
network that computes the same output, up to LayerNorm's eps (1e-6 against variances that only grow), while
every skip, upsampler input and block input of level l is exactly ``k_l`` times the original.
:func:`stressed_twin` picks the factors so that, at every level, the largest channel standard deviation a
LayerNorm sees (over the pixels of a real photo) is the trained bottleneck's, ~175 (sum_c (x - mu)^2 ~ 15M over
512 channels). It is the deviations that a LayerNorm squares, and a random network's peak |x| says little about
them: its stream is spiky, so matching only the peak leaves the sums far below a trained network's. Every level is
stressed, not only the bottleneck (a single ``k`` leaves the full-resolution levels of a random network far
below it).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from ..photo import centre_crop
from .reference import NAFNet, Upsample

#: Trained GoPro-w32's bottleneck stream: |x| ~ 175 and a channel LayerNorm sum sum_c (x - mu)^2 of ~15M over
#: 512 channels, i.e. a channel standard deviation of ~175 at the worst pixel. The stress target.
TRAINED_BOTTLENECK = 175.0


def stream_twin(model: NAFNet, k: float | list[float]) -> NAFNet:
    """A copy of ``model`` whose residual stream at level l is ``k[l]`` times larger (one number: every level);
    the same function."""
    from .tlc import block_levels

    levels = len(model.encoders) + 1
    ks = [float(k)] * levels if isinstance(k, (int, float)) else [float(v) for v in k]
    if len(ks) != levels or any(not v > 0 for v in ks):
        raise ValueError(f"need {levels} positive factors, got {k}")
    net = copy.deepcopy(model).eval()
    top = len(net.encoders)
    with torch.no_grad():
        net.intro.weight.mul_(ks[0])
        _bias(net.intro).mul_(ks[0])
        for level, down in enumerate(cast(Iterable[nn.Conv2d], net.downs)):
            down.weight.mul_(ks[level + 1] / ks[level])
            _bias(down).mul_(ks[level + 1])
        for i, up in enumerate(cast(Iterable[Upsample], net.ups)):
            up.conv.weight.mul_(ks[top - i - 1] / ks[top - i])
        for level, block in block_levels(net):
            block.beta.mul_(ks[level])
            block.gamma.mul_(ks[level])
        net.ending.weight.div_(ks[0])
    return net


def per_level_max(model: NAFNet, photos, stat, block_outputs: bool = False) -> list[float]:
    """Per level (0 = full resolution .. the bottleneck), the largest ``stat(t)`` over every LayerNorm input ``t``
    (and, with ``block_outputs``, every block output) while ``model`` runs on each of ``photos``; 0 for a level
    without blocks."""
    from .tlc import block_levels

    peaks = [0.0] * (len(model.encoders) + 1)
    handles = []
    for level, b in block_levels(model):

        def grab(t: torch.Tensor, level=level) -> None:
            peaks[level] = max(peaks[level], float(stat(t.detach())))

        if block_outputs:
            handles.append(b.register_forward_hook(_on_output(grab)))
        for norm in (b.norm1, b.norm2):
            handles.append(norm.register_forward_pre_hook(_on_input(grab)))
    try:
        with torch.no_grad():
            for x in [photos] if isinstance(photos, torch.Tensor) else photos:
                model(x)
    finally:
        for h in handles:
            h.remove()
    return peaks


def _on_input(grab: Callable[[torch.Tensor], None]) -> Callable[[nn.Module, tuple[Any, ...]], None]:
    """A forward pre-hook that hands a module's first input to ``grab``."""
    return lambda m, i: grab(i[0])


def _on_output(grab: Callable[[torch.Tensor], None]) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
    """A forward hook that hands a module's output to ``grab``."""
    return lambda m, i, o: grab(o)


def _bias(conv: nn.Conv2d) -> torch.Tensor:
    """The bias of a convolution built with one (``intro`` and the downsamplers)."""
    if conv.bias is None:
        raise ValueError(f"expected a convolution with a bias, got {conv}")
    return conv.bias


def level_magnitudes(model: NAFNet, x: torch.Tensor) -> list[float]:
    """max |x| of the residual stream per level: every branch input (norm1/norm2) and block output."""
    return per_level_max(model, x, lambda t: t.abs().max(), block_outputs=True)


def bottleneck_magnitude(model: NAFNet, x: torch.Tensor) -> float:
    """max |x| of the bottleneck residual stream: the last encoder level and the middle blocks' level."""
    return max(level_magnitudes(model, x)[-2:])


def channel_std(t: torch.Tensor) -> torch.Tensor:
    """Largest per-pixel channel standard deviation ``sqrt(mean_c (t - mean_c t)^2)``."""
    return (t - t.mean(1, keepdim=True)).pow(2).mean(1).sqrt().max()


def photo_crop(name: str, size: int = 256, multiple: int = 1) -> torch.Tensor:
    """Centre square crop (``size``, at most the photo's short side, rounded down to ``multiple``) of a real photo
    shipped in scikit-image's wheel, RGB NCHW float32 in [0, 1]."""
    import skimage
    from PIL import Image

    img = np.asarray(Image.open(Path(skimage.__file__).parent / "data" / name).convert("RGB"), np.float32)
    s = min(size, *img.shape[:2]) // multiple * multiple
    crop = centre_crop(img, s, s) / 255.0
    return torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)[None]))


def default_photo(size: int = 256) -> torch.Tensor:
    """Centre ``size`` crop of scikit-image's chelsea.png (:func:`photo_crop`)."""
    return photo_crop("chelsea.png", size)


def level_deviations(model: NAFNet, x: torch.Tensor) -> list[float]:
    """Per level, the largest channel standard deviation any LayerNorm input has at any pixel: what a channel
    LayerNorm squares and sums."""
    return per_level_max(model, x, channel_std)


def stressed_twin(
    model: NAFNet, target: float = TRAINED_BOTTLENECK, x: torch.Tensor | None = None
) -> tuple[NAFNet, list[float], list[float]]:
    """``(twin, k, deviations)``: the :func:`stream_twin` whose largest LayerNorm channel standard deviation is
    ``target`` at every level on ``x`` (default: :func:`default_photo`), its factors and its per-level values
    (:func:`level_deviations`). Each level's stream is linear in its factor, so one correction is exact up to
    eps; a second pass confirms it."""
    if target <= 0:
        raise ValueError(f"stress target must be positive, got {target}")
    x = default_photo() if x is None else x
    if model.config.img_channel == 1 and x.shape[1] == 3:
        x = x.mean(1, keepdim=True)
    base = level_deviations(model, x)
    if min(base) <= 0:
        raise ValueError("the network's stream is flat at some level on this photo: nothing to stress")
    k = [target / b for b in base]
    for _ in range(2):
        measured = level_deviations(stream_twin(model, k), x)
        k = [kk * target / m for kk, m in zip(k, measured)]
    twin = stream_twin(model, k)
    return twin, k, level_deviations(twin, x)


__all__ = [
    "TRAINED_BOTTLENECK", "bottleneck_magnitude", "channel_std", "default_photo", "level_deviations",
    "level_magnitudes", "per_level_max", "photo_crop", "stream_twin", "stressed_twin",
]  # fmt: skip
