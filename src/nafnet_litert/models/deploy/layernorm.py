"""Rewrite (a): a channel LayerNorm whose every reduction runs on ``x / S`` — fp16-safe, and exact.

Why: NAFNet has no activations, so its residual stream grows to |x| ~ 175 at the bottleneck of trained models.
The reference computes ``mean((x - mu)^2)`` over up to 512 channels; a GPU that accumulates in fp16 (Mali, Apple)
must hold a sum near 512 * 175^2 ~ 15.7M, far above fp16's 65504, and the output turns into a grid of inf/NaN.

The rewrite computes the statistics on ``xs = x / S`` and *stays in the scaled domain*::

    xs  = x * (1/S)
    d   = xs - mean_c(xs)                 # = (x - mu) / S
    v   = mean_c(d * d)                   # = var / S^2     (x*x, never POW: POW breaks GPU delegation)
    y   = d * rsqrt(v + eps / S^2)        # = (x - mu) / sqrt(var + eps)

Why it is exact: LayerNorm is scale invariant, so in real arithmetic ``y`` is identical. With S a power of two
the scaling itself is exact in fp32: multiplying by 2^-k only shifts exponents, so ``xs``, ``d``, ``v`` and
``eps / S^2`` are the reference's values scaled by exact powers of two. The one difference is RSQRT then MUL in
place of SQRT then DIV (an ulp or two): RSQRT is in the phone-proven op set, SQRT and DIV are not
(:mod:`nafnet_litert.litert.device_ops`). The variance is never multiplied back by S^2 (at |x| in the thousands that
would overflow fp16 again).

Which S: any positive S is exact; S only decides where fp16 holds, and the two ends pull apart (the squares
must stay below 65504, the variance and eps/S^2 above fp16's subnormal floor). The export picks S per network
level from the checkpoint's own activations (:mod:`.calibrate`): S = 1 where the stream is small, a larger power
of two at the bottleneck. ``DEFAULT_SCALE`` (32) remains the default of the PyTorch-only deploy network, which
never runs in fp16.
"""

from __future__ import annotations

import torch
from torch import nn

from ..reference import LayerNorm2d

DEFAULT_SCALE = 32.0


class ScaledLayerNorm2d(nn.Module):
    """Drop-in replacement for :class:`~nafnet_litert.models.reference.LayerNorm2d` (same parameters)."""

    def __init__(self, channels: int, eps: float = 1e-6, scale: float = DEFAULT_SCALE) -> None:
        super().__init__()
        if scale <= 0:
            raise ValueError(f"LayerNorm scale must be positive, got {scale}")
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps
        self.scale = float(scale)

    @classmethod
    def from_reference(cls, ln: LayerNorm2d, scale: float = DEFAULT_SCALE) -> "ScaledLayerNorm2d":
        new = cls(ln.weight.numel(), ln.eps, scale)
        new.load_state_dict(ln.state_dict())
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = x * (1.0 / self.scale)
        d = xs - xs.mean(1, keepdim=True)
        v = (d * d).mean(1, keepdim=True)
        y = d * torch.rsqrt(v + self.eps / (self.scale * self.scale))
        return y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
