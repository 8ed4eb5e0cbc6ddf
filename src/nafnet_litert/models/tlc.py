"""TLC, the test-time local converter (Chu et al., "Improving Image Restoration by Revisiting Global Information
Aggregation", ECCV 2022), as megvii's ``NAFNetLocal`` applies it at inference — the PyTorch reference.

Why: NAFNet's channel attention pools over the whole image. It was trained on 256 x 256 crops, so at inference
on a full frame each attention vector summarises a far larger area than it ever did in training. TLC replaces
every global pool with a *local* mean over a window the size the network saw in training, and improves the
restoration of large images.

The definition (megvii ``basicsr/models/archs/local_arch.py``, ``AvgPool2d`` on its non-fast path, which
``NAFNetLocal`` uses; re-stated here, the code is our own):

* Kernel per level, fixed once from the training size: ``k = train_feature_size * base_size // train_size`` per
  axis, with ``train_size = 256``, ``base_size = int(train_size * 1.5) = 384`` and ``train_feature_size`` the
  feature map size at that level for a ``train_size`` input (``256 >> level``). NAFNetLocal computes it by running
  one forward pass on a ``train_size`` input; here it is computed directly, since the feature size at level ``l``
  is ``train_size // 2**l``. For the default numbers ``k = 384, 192, 96, 48, 24`` at levels 0..4: always a window
  of 384 input pixels.
* On an ``h x w`` map: when ``k_h >= h`` and ``k_w >= w`` the pool is the ordinary global mean (a 1 x 1 map).
  Otherwise ``k1 = min(h, k_h)``, ``k2 = min(w, k_w)``; the output is the mean of every ``k1 x k2`` window lying
  fully inside the map (``(h-k1+1) x (w-k2+1)`` values), replicate-padded back to ``h x w`` with
  ``left = (w-_w)//2``, ``right = (w-_w+1)//2``, ``top = (h-_h)//2``, ``bottom = (h-_h+1)//2``.

The level of a block follows from its position: ``encoders[i]`` run at level ``i``, ``middle_blks`` at level
``len(encoders)``, ``decoders[j]`` at level ``len(encoders) - 1 - j``.

:class:`TLCPool` computes the window sums from a 2-D cumulative-sum integral image, as megvii does, but in float64:
megvii's fp32 integral image of a full frame reaches ~1e8 and loses ~1e-5 of the mean to rounding, which is an
artefact of that implementation, not part of the definition. This module is the reference only and is never
exported (CUMSUM and replicate padding are not GPU-clean); the deploy form is
:class:`nafnet_litert.models.deploy.tlc_pool.TLCBoxMean`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from .config import NAFNetConfig
from .reference import GlobalAvgPool, NAFBlock, NAFNet

#: megvii's NAFNetLocal defaults: trained on 256 x 256 crops, windows 1.5 times that.
TRAIN_SIZE = 256
BASE_RATIO = 1.5


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    a, b = v
    return int(a), int(b)


def tlc_kernels(
    config: NAFNetConfig, train_size: int | tuple[int, int] = TRAIN_SIZE, base_ratio: float = BASE_RATIO
) -> list[tuple[int, int]]:
    """The (k_h, k_w) window of every level ``0..len(enc_blocks)`` (index = level).

    ``train_size`` is an int or (height, width) and must be a multiple of ``config.padder_size``.
    """
    th, tw = _pair(train_size)
    p = config.padder_size
    if th <= 0 or tw <= 0 or th % p or tw % p:
        raise ValueError(f"TLC train size {th}x{tw} must be a positive multiple of {p} for this network")
    if base_ratio <= 0:
        raise ValueError(f"TLC base ratio must be positive, got {base_ratio}")
    bh, bw = int(th * base_ratio), int(tw * base_ratio)
    kernels = []
    for level in range(len(config.enc_blocks) + 1):
        fh, fw = th >> level, tw >> level  # feature size at this level for a train_size input
        kernels.append((max(1, fh * bh // th), max(1, fw * bw // tw)))
    return kernels


def block_levels(model: NAFNet) -> Iterator[tuple[int, NAFBlock]]:
    """Every NAFBlock of ``model`` with the level (0 = full resolution) it runs at."""
    n = len(model.encoders)
    for i, enc in enumerate(model.encoders):
        for block in _blocks(enc):
            yield i, block
    for block in _blocks(model.middle_blks):
        yield n, block
    for j, dec in enumerate(model.decoders):
        for block in _blocks(dec):
            yield n - 1 - j, block


def _blocks(stage: nn.Module) -> Iterator[NAFBlock]:
    """The blocks of one encoder, decoder or middle stage (a Sequential of NAFBlocks)."""
    return iter(cast(Iterable[NAFBlock], stage))


def tlc_pool_is_global(kernel: tuple[int, int], h: int, w: int) -> bool:
    """Whether TLC's pool with ``kernel`` is the plain global mean on an ``h x w`` map."""
    return kernel[0] >= h and kernel[1] >= w


def replicate_pads(h: int, w: int, valid_h: int, valid_w: int) -> tuple[int, int, int, int]:
    """megvii's (left, right, top, bottom) replicate padding from the valid box-mean map back to ``h x w``."""
    return (w - valid_w) // 2, (w - valid_w + 1) // 2, (h - valid_h) // 2, (h - valid_h + 1) // 2


class TLCPool(nn.Module):
    """TLC's local average pool with a fixed ``(k_h, k_w)`` kernel (reference; see the module docstring)."""

    def __init__(self, kernel: tuple[int, int]) -> None:
        super().__init__()
        kh, kw = _pair(kernel)
        if kh < 1 or kw < 1:
            raise ValueError(f"TLC kernel must be positive, got {kernel}")
        self.kernel = (kh, kw)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if tlc_pool_is_global(self.kernel, h, w):
            return F.adaptive_avg_pool2d(x, 1)
        k1, k2 = min(h, self.kernel[0]), min(w, self.kernel[1])
        s = F.pad(x.double().cumsum(-1).cumsum(-2), (1, 0, 1, 0))  # s[i, j] = sum of x[:i, :j]
        box = s[..., k1:, k2:] - s[..., :-k1, k2:] - s[..., k1:, :-k2] + s[..., :-k1, :-k2]
        out = (box / (k1 * k2)).to(x.dtype)
        return F.pad(out, replicate_pads(h, w, *out.shape[-2:]), mode="replicate")


def to_tlc(
    model: NAFNet, train_size: int | tuple[int, int] = TRAIN_SIZE, base_ratio: float = BASE_RATIO
) -> NAFNet:
    """A deep copy of the reference ``model`` (NAFNet -> NAFNetLocal) whose every block pools with :class:`TLCPool`.

    The input model is left untouched. Its blocks must still hold the reference ``GlobalAvgPool``.
    """
    kernels = tlc_kernels(model.config, train_size, base_ratio)
    local = copy.deepcopy(model).eval()
    for level, block in block_levels(local):
        if not isinstance(block.sca[0], GlobalAvgPool):
            raise TypeError(f"to_tlc expects a reference NAFNet (GlobalAvgPool), found {type(block.sca[0]).__name__}")
        block.sca[0] = TLCPool(kernels[level])
    return local


__all__ = [
    "BASE_RATIO",
    "TRAIN_SIZE",
    "TLCPool",
    "block_levels",
    "replicate_pads",
    "tlc_kernels",
    "tlc_pool_is_global",
    "to_tlc",
]
