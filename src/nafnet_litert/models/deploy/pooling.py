"""Rewrite (b): channel-attention global average pooling as two single-axis means, on ``x / S``.

Why: mobile GPU delegates mis-handle one MEAN over two axes (H and W together), and a global mean accumulated in
fp16 over a full frame (1280 columns of |x| ~ 100) overflows. The rewrite takes the mean over W, then over H, of
``x * (1/S)``, and multiplies the pooled 1x1 map back by S (a tiny tensor: no overflow risk, and the converter may
fold it into the following 1x1 convolution).

Why it is exact: every row has the same number of pixels, so the mean of the row means is the global mean; and
scaling by a power of two S commutes with every rounding step in fp32. The only difference from
``adaptive_avg_pool2d(x, 1)`` is the order of the additions (max abs difference ~1e-7 relative in fp32).
"""

from __future__ import annotations

import torch
from torch import nn

#: Scale of the pooling means (fixed: a full-frame row mean must not overflow an fp16 accumulator).
DEFAULT_POOL_SCALE = 32.0


class SeparableGlobalMean(nn.Module):
    """``mean over H and W`` as ``mean(W)`` then ``mean(H)``, computed on ``x / scale``; output N x C x 1 x 1."""

    def __init__(self, scale: float = DEFAULT_POOL_SCALE) -> None:
        super().__init__()
        if scale <= 0:
            raise ValueError(f"pooling scale must be positive, got {scale}")
        self.scale = float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 1.0:
            return x.mean(3, keepdim=True).mean(2, keepdim=True)
        return (x * (1.0 / self.scale)).mean(3, keepdim=True).mean(2, keepdim=True) * self.scale
