"""The tiny PyTorch networks behind the fixtures and their controls.

Every network is ``x + head(body(stem(x)))`` on a ``[1, 3, 16, 16]`` image (:class:`Probe`): one float32 image in
and the same shape out, so the audit's ``io`` check holds and a failing audit is the rule under test. The stem is a
convolution of the runtime input, so nothing under test is a constant the converter could fold; the head maps the
body's channels back to 3. Weights are seeded: every build converts the same network.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from nafnet_litert.models.deploy.layernorm import ScaledLayerNorm2d
from nafnet_litert.models.deploy.native_ops import depth_to_space
from nafnet_litert.models.deploy.upsample import ZeroStuffUpsample, subpixel_rows, transpose_kernel
from nafnet_litert.models.reference import Upsample

SIZE = (16, 16)
CHANNELS = 4


def seeded_conv(cin: int, cout: int, k: int = 1, stride: int = 1, seed: int = 0, bias: bool = True) -> nn.Conv2d:
    g = torch.Generator().manual_seed(seed)
    conv = nn.Conv2d(cin, cout, k, stride=stride, bias=bias)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.5)
        if bias:
            conv.bias.copy_(torch.randn(cout, generator=g) * 0.1)
    return conv


class Body(nn.Module):
    """Wraps a function of the stem's output (and holds its parameters, if any)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], **params: nn.Module) -> None:
        super().__init__()
        self.fn = fn
        self.parts = nn.ModuleDict(params)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.fn(y, **dict(self.parts)) if len(self.parts) else self.fn(y)


class Probe(nn.Module):
    """``x + head(body(stem(x)))``. ``down``: the stem halves the size (for bodies that upsample 2x)."""

    def __init__(self, body: nn.Module, channels: int = CHANNELS, head_in: int | None = None, down: bool = False):
        super().__init__()
        self.stem = seeded_conv(3, channels, 2 if down else 1, 2 if down else 1, seed=1)
        self.body = body
        self.head = seeded_conv(head_in or channels, 3, seed=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.head(self.body(self.stem(x)))


def probe(fn, channels: int = CHANNELS, head_in: int | None = None, down: bool = False, **params) -> Probe:
    return Probe(Body(fn, **params), channels, head_in, down).eval()


# --------------------------------------------------------------------------------------------- shared pieces
def reference_upsample() -> Upsample:
    """NAFNet's upsampler (1x1 conv to 2C, PixelShuffle 2) on 4 channels, seeded: the computation that the
    DEPTH_TO_SPACE, TRANSPOSE_CONV and zero-stuff forms below all compute exactly."""
    up = Upsample(CHANNELS)
    with torch.no_grad():
        up.conv.weight.copy_(torch.randn(up.conv.weight.shape, generator=torch.Generator().manual_seed(3)))
    return up


class DepthToSpaceUpsample(nn.Module):
    """The upsampler as 1x1 conv + TFLite DEPTH_TO_SPACE (the project's ``native_ops`` custom op)."""

    def __init__(self, up: Upsample) -> None:
        super().__init__()
        w = up.conv.weight
        self.conv = nn.Conv2d(w.shape[1], w.shape[0], 1, bias=False)
        self.conv.weight.data.copy_(subpixel_rows(transpose_kernel(w)))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return depth_to_space(self.conv(y), 2)


def transpose_conv(up: Upsample) -> nn.ConvTranspose2d:
    """The upsampler as one ConvTranspose2d(k=2, s=2): ``weight[ci, co, i, j] = W[4 co + 2 i + j, ci]``."""
    w = up.conv.weight.detach()[:, :, 0, 0]
    cout = w.shape[0] // 4
    ct = nn.ConvTranspose2d(w.shape[1], cout, 2, stride=2, bias=False)
    with torch.no_grad():
        for i in range(2):
            for j in range(2):
                ct.weight[:, :, i, j] = w[2 * i + j :: 4].T
    return ct


#: A fixed channel permutation (what a gather of channels computes), and the same permutation as a 1x1 conv.
PERMUTATION = [2, 0, 3, 1]


def permutation_conv(perm: list[int] = PERMUTATION) -> nn.Conv2d:
    conv = nn.Conv2d(len(perm), len(perm), 1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        for out, src in enumerate(perm):
            conv.weight[out, src] = 1.0
    return conv


def constant_conv(matrix: np.ndarray) -> nn.Conv2d:
    """A 1x1 convolution with a fixed ``[C_out, C_in]`` matrix (no bias)."""
    conv = nn.Conv2d(matrix.shape[1], matrix.shape[0], 1, bias=False)
    conv.weight.data.copy_(torch.from_numpy(np.asarray(matrix, np.float32))[:, :, None, None])
    return conv


def column_parity(width: int, odd: bool) -> torch.Tensor:
    m = np.zeros((1, 1, 1, width), np.float32)
    m[..., int(odd) :: 2] = 1.0
    return torch.from_numpy(m)


#: A constant "bank" whose channel max the REDUCE_MAX fixture reads (an attention-latent-like constant).
BANK = np.linspace(-1.0, 2.0, CHANNELS * SIZE[0] * SIZE[1], dtype=np.float32).reshape(1, CHANNELS, *SIZE)[
    :, [1, 3, 0, 2]
].copy()


class StraightLayerNorm(nn.Module):
    """A channel LayerNorm written with phone-proven ops only (MEAN over C, SUB, MUL, RSQRT): the statistics on
    ``x`` itself, so at trained magnitudes ``mean_c((x - mu)^2)`` sums past 65504 in fp16."""

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x - x.mean(1, keepdim=True)
        return d * torch.rsqrt((d * d).mean(1, keepdim=True) + self.eps)


#: The LayerNorm fixtures' stream: 16 channels whose deviations from their channel mean have an RMS of ~175 (trained
#: GoPro-w32's bottleneck, :data:`nafnet_litert.models.stress.TRAINED_BOTTLENECK`) with one outlier channel, as
#: trained networks have: the outlier's square (~600^2) and the channel sum of squares pass 65504, whatever the photo.
LN_CHANNELS = 16
LN_DEVIATION = 175.0


def layernorm_probe(norm: nn.Module) -> Probe:
    """Stem to 16 channels ``v_c * D * (0.75 + 0.5 * mean_rgb(x))`` plus a small per-colour term (so the normalised
    channels vary over the image), ``norm``, then a head that maps back to small residuals."""
    net = Probe(norm, LN_CHANNELS)
    g = torch.Generator().manual_seed(4)
    v = torch.cat([torch.linspace(0.2, 1.0, LN_CHANNELS - 1), torch.tensor([4.0])])
    v = v * torch.tensor([(-1.0) ** c for c in range(LN_CHANNELS)])
    d = v - v.mean()
    scale = LN_DEVIATION / float(d.square().mean().sqrt())
    with torch.no_grad():
        w = (v * scale * 0.5 / 3)[:, None].repeat(1, 3) + 8.0 * torch.randn(LN_CHANNELS, 3, generator=g)
        net.stem.weight.copy_(w[:, :, None, None])
        net.stem.bias.copy_(v * scale * 0.75)
        net.head.weight.mul_(0.1)
    return net.eval()


def scaled_layernorm(scale: float = 32.0) -> ScaledLayerNorm2d:
    """The project's fp16-safe LayerNorm (statistics on ``x / S``), unit affine, as the exporter emits it."""
    return ScaledLayerNorm2d(LN_CHANNELS, scale=scale).eval()


__all__ = [
    "BANK", "CHANNELS", "DepthToSpaceUpsample", "LN_CHANNELS", "PERMUTATION", "Probe", "SIZE", "StraightLayerNorm",
    "ZeroStuffUpsample", "column_parity", "constant_conv", "layernorm_probe", "permutation_conv",
    "probe", "reference_upsample", "scaled_layernorm", "seeded_conv", "transpose_conv",
]  # fmt: skip
