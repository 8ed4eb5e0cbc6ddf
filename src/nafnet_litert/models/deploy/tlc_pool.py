"""Rewrite (d, optional): TLC's local channel-attention pool as a GPU-clean, fp16-safe box mean.

Why: the reference :class:`~nafnet_litert.models.tlc.TLCPool` (like megvii's code) sums a 2-D cumulative-sum
integral image — CUMSUM, which mobile GPU delegates refuse, and a running sum over up to 384 x 384 values of
|x| ~ 100 that overflows fp16 many times over — then replicate-pads, which lowers to GATHER_ND (refused too).

The rewrite computes the same windows from means only, separably (W, then H):

* dyadic means by repeated pairwise averaging of shifted slices: ``m_1 = x``,
  ``m_2j[i] = (m_j[i] + m_j[i + j]) * 0.5`` (SLICE, ADD, MUL);
* a width ``k`` that is not a power of two splits each window into consecutive dyadic blocks following k's binary
  digits, largest first: ``mean_k[i] = sum_b (2^b / k) * m_(2^b)[i + off_b]``, ``off_b`` the sum of the larger
  blocks (e.g. 384 = 256 + 128: ``(2/3) m_256[i] + (1/3) m_128[i + 256]``);
* an axis where the window covers the whole map (``k >= n``) is a single-axis MEAN on ``x / S`` (as in
  :mod:`.pooling`), and the all-global case is exactly :class:`~.pooling.SeparableGlobalMean`;
* megvii's replicate padding back to ``h x w`` without GATHER, CONCATENATION or a nearest resize: the map is
  zero-padded (PAD), and each one-pixel edge slice ``e`` is spread over its pad as ``p - m * (p - e)`` (a
  runtime broadcast SUB along the axis, a MUL by a 0/1 constant that covers the pad, a SUB); a one-pixel axis is
  ``p - (p - x)``. (An earlier form spread the edge with a nearest resize and read every off-grid
  position, the form phones compute wrong: :mod:`nafnet_litert.litert.forms`.)

All ops are rank 4 and GPU-clean; the shapes are static at export, so the module decides global vs local and
builds its slices from ``x.shape`` at trace time. fp16: every intermediate is a mean (or a weighted part of one,
weights <= 1), so no value ever exceeds max|x| (the one sum, ``m_j[i] + m_j[i+j]``, is at most 2 max|x|) — the
integral image would reach k1*k2*max|x|. Nothing is pre-scaled by 1/k either, so small values do not sink into
fp16's subnormal range.

Why it is exact: for each output pixel the rewrite averages the same ``k1 x k2`` window of the same map as the
reference, and pads with the same edge values at the same offsets; only the order of the additions differs (a
balanced tree of pairwise means instead of an integral-image difference). In fp32 the two agree to ~1e-7 relative.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..reference import NAFNet
from ..tlc import BASE_RATIO, TRAIN_SIZE, TLCPool, block_levels, replicate_pads, tlc_kernels, tlc_pool_is_global
from .pooling import DEFAULT_POOL_SCALE as DEFAULT_SCALE
from .pooling import SeparableGlobalMean


def _box_mean(x: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """Mean of every ``k`` consecutive values along ``dim`` (2 or 3): length ``n - k + 1``, means only."""
    n = x.shape[dim]
    if k == 1:
        return x
    out_len = n - k + 1
    top = k.bit_length() - 1
    bits = [b for b in range(top, -1, -1) if k >> b & 1]  # largest block first
    offsets, off = {}, 0
    for b in bits:
        offsets[b] = off
        off += 1 << b
    # need[b]: how many leading values of m_(2^b) are read (by the output, or by the next doubling)
    need = [0] * (top + 1)
    for b in range(top, -1, -1):
        r = offsets[b] + out_len if b in offsets else 0
        if b < top:
            r = max(r, need[b + 1] + (1 << b))
        need[b] = r
    m = x.narrow(dim, 0, need[0]) if need[0] < n else x
    means = {0: m} if 0 in offsets else {}
    for b in range(1, top + 1):
        half = 1 << (b - 1)
        m = (m.narrow(dim, 0, need[b]) + m.narrow(dim, half, need[b])) * 0.5
        if b in offsets:
            means[b] = m
    out = None
    for b in bits:
        term = means[b].narrow(dim, offsets[b], out_len)
        if len(bits) > 1:
            term = term * ((1 << b) / k)
        out = term if out is None else out + term
    assert out is not None  # k >= 2 here, so it has at least one set bit
    return out


def _edge_mask(n: int, start: int, stop: int, dim: int) -> torch.Tensor:
    """A 0/1 constant along ``dim`` (2 or 3) of length ``n``: 1 on ``[start, stop)`` (built in numpy, so it is a
    constant of the graph, not ops)."""
    shape = [1, 1, 1, 1]
    shape[dim] = n
    m = np.zeros(n, np.float32)
    m[start:stop] = 1.0
    return torch.from_numpy(m.reshape(shape))


def _replicate_pad_axis(x: torch.Tensor, before: int, after: int, dim: int) -> torch.Tensor:
    """Replicate padding along one axis without GATHER, CONCATENATION or a nearest resize (phone-proven ops only).

    The map is zero-padded (PAD) to ``p``; each one-pixel edge slice ``e`` is spread over its pad as
    ``p - m * (p - e)``: ``p - e`` broadcasts the runtime edge along the axis (as NAFNet's channel attention
    broadcasts its weights over H and W), ``m`` is a 0/1 constant that is 1 on that pad only. On the pad ``p`` is 0,
    so the value is ``0 - (0 - e) = e``; elsewhere ``m`` is 0 and the value is ``p - 0 = p``: exact for finite
    values, which NAFNet's are. (A runtime zero such as ``p * 0`` would be folded by the converter into a constant
    of the padded map's full size: 370 MB for GoPro-w32 at 720x1280.)"""
    if before == 0 and after == 0:
        return x
    n = x.shape[dim]
    total = before + n + after
    pads = (before, after, 0, 0) if dim == 3 else (0, 0, before, after)
    padded = F.pad(x, pads)
    if n == 1:  # the whole axis is the one value: p - (p - x)
        return padded - (padded - x)
    out = padded
    if before:
        out = out - _edge_mask(total, 0, before, dim) * (padded - x.narrow(dim, 0, 1))
    if after:
        out = out - _edge_mask(total, n + before, total, dim) * (padded - x.narrow(dim, n - 1, 1))
    return out


class TLCBoxMean(nn.Module):
    """Deploy form of :class:`~nafnet_litert.models.tlc.TLCPool` (same kernel, same output shape and values).

    ``scale`` is the statistics scale of the single-axis MEANs (global, or an axis the window covers whole).
    """

    def __init__(self, kernel: tuple[int, int], scale: float = DEFAULT_SCALE) -> None:
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else (int(kernel[0]), int(kernel[1]))
        if kh < 1 or kw < 1:
            raise ValueError(f"TLC kernel must be positive, got {kernel}")
        self.kernel = (kh, kw)
        self.global_mean = SeparableGlobalMean(scale)

    @property
    def scale(self) -> float:
        return self.global_mean.scale

    @classmethod
    def from_reference(cls, pool: TLCPool, scale: float = DEFAULT_SCALE) -> "TLCBoxMean":
        return cls(pool.kernel, scale)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, scale={self.scale}"

    def _axis_mean(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        s = self.scale
        if s == 1.0:
            return x.mean(dim, keepdim=True)
        return (x * (1.0 / s)).mean(dim, keepdim=True) * s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if tlc_pool_is_global(self.kernel, h, w):
            return self.global_mean(x)
        k1, k2 = min(h, self.kernel[0]), min(w, self.kernel[1])
        # a clamped axis (window = whole axis) first: it shrinks the map before the other axis' box mean
        y = self._axis_mean(x, 2) if k1 == h else x
        y = self._axis_mean(y, 3) if k2 == w else _box_mean(y, k2, 3)
        if k1 < h:
            y = _box_mean(y, k1, 2)
        left, right, top, bottom = replicate_pads(h, w, *y.shape[-2:])
        y = _replicate_pad_axis(y, left, right, 3)
        return _replicate_pad_axis(y, top, bottom, 2)


def to_tlc_deploy(
    deploy_model: NAFNet, train_size: int | tuple[int, int] = TRAIN_SIZE, base_ratio: float = BASE_RATIO
) -> NAFNet:  # a DeployedNAFNet in, a DeployedNAFNet out (the deep copy keeps its type and plan)
    """A deep copy of a deployed model (the output of ``to_deploy``) with TLC pooling in every block.

    Each block's :class:`SeparableGlobalMean` becomes a :class:`TLCBoxMean` with its level's kernel and the same
    scale; the TLCBoxMean runs that very SeparableGlobalMean wherever the pool is global at the traced size, so an
    export keeps the plain global mean at every level where TLC does not change anything.
    """
    kernels = tlc_kernels(deploy_model.config, train_size, base_ratio)
    local = copy.deepcopy(deploy_model).eval()
    for level, block in block_levels(local):
        pool = block.sca[0]
        if not isinstance(pool, SeparableGlobalMean):
            raise TypeError(
                f"to_tlc_deploy expects a deployed NAFNet (SeparableGlobalMean; run to_deploy first), "
                f"found {type(pool).__name__}"
            )
        new = TLCBoxMean(kernels[level], pool.scale)
        new.global_mean = pool
        block.sca[0] = new
    return local


__all__ = ["TLCBoxMean", "to_tlc_deploy"]
