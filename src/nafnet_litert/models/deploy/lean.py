"""Rewrite (d): the lean deploy graph — every constant scale folded into a convolution, nothing that does nothing.

Built from a deployed network (the output of :func:`~.to_deploy`); the same function in real arithmetic:

* **Residual stream kept at x/S_l** at level l (``S_l`` the level's LayerNorm scale, a power of two: see
  :mod:`.calibrate`). The intro conv is divided by S_0 and the ending conv multiplied by S_0; a downsampler
  from level l to l+1 has its weights times S_l/S_(l+1) and its bias divided by S_(l+1), an upsampler from level
  l+1 to l its weights times S_(l+1)/S_l; every residual branch's last conv (``conv3``/``conv5``, which also
  absorb ``beta``/``gamma``) is divided by S_l. Skips join streams of the same level, so the whole stream is
  x/S_l at no op cost and each LayerNorm reduces over values of magnitude |x|/S_l.
* **LayerNorm in 6 ops.** ``mu = conv_mean(x)`` (1x1 conv C->1, weights 1/C: a mean whose fp16 accumulator
  never exceeds max|x|), ``d = x - mu``, ``v = conv_mean(d*d) + eps/S^2`` (the eps is the conv's bias),
  ``y = d * rsqrt(v)``. Its affine (weight, bias) is folded into the following 1x1 conv (conv1 / conv4):
  ``W (a*y + b) + c = (W a) y + (W b + c)``. LayerNorm is scale invariant, so eps/S^2 keeps it exact.
* **Channel attention on x/P** (P the pooling scale, 32). The gate's second half is produced by the depthwise
  conv already divided by P, so the pooled input is x/P; the attention conv and ``conv3`` take the factor P back
  in their weights.
* **SimpleGate without SLICE or SPLIT.** Each gate's producers are split by output channel into their two halves:
  ``conv1`` (1x1) and the depthwise ``conv2`` of the attention branch, ``conv4`` of the FFN. Each half is its own
  convolution, so the gate is one MUL of two convolutions: same MACs, and exact (a convolution's output channels
  are independent; splitting its rows changes no arithmetic).
* **Upsampler** in the phone-proven zero-stuff form (:class:`~.upsample.ZeroStuffUpsample`: nearest 2x resize read
  only on its stride grid, PAD, a 2x2 convolution carrying the 1x1 weights, a crop); its kernel takes the level
  scales like any other convolution. No DEPTH_TO_SPACE.

``native_ops=True`` keeps the older, smaller variant: one SPLIT per attention gate and DEPTH_TO_SPACE upsamplers
(:mod:`.native_ops`). The host GPU runs it, but phones are documented to reject both ops
(:mod:`nafnet_litert.litert.device_ops`), so the audit fails it; it is opt-in for desktop/browser WebGPU only.

Max abs difference to the deploy network in fp32 is at the level of rounding (~1e-6 on unit-range outputs).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import cast

import torch
from torch import nn

from ..reference import NAFBlock, NAFNet
from ..tlc import block_levels
from . import DeployedNAFNet
from .layernorm import ScaledLayerNorm2d
from .native_ops import channel_halves, depth_to_space
from .pooling import SeparableGlobalMean
from .upsample import ZeroStuffUpsample, subpixel_rows


def _conv(cin: int, cout: int, k: int = 1, groups: int = 1, bias: bool = True, **kw) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, groups=groups, bias=bias, **kw)


def _bias(conv: nn.Conv2d) -> torch.Tensor:
    """The bias of a convolution built with one (every NAFNet conv but the upsamplers', and every ``_conv``)."""
    if conv.bias is None:
        raise ValueError(f"expected a convolution with a bias, got {conv}")
    return conv.bias


class ChannelMean(nn.Conv2d):
    """Mean over channels as a 1x1 convolution C -> 1 (weights 1/C), plus a constant (its bias)."""

    def __init__(self, channels: int, add: float = 0.0) -> None:
        super().__init__(channels, 1, 1, bias=True)
        self.weight.data.fill_(1.0 / channels)
        _bias(self).data.fill_(add)


class LeanLayerNorm(nn.Module):
    """``(x - mean_c x) * rsqrt(mean_c (x - mu)^2 + eps)`` without affine (folded into the next conv)."""

    def __init__(self, channels: int, eps: float) -> None:
        super().__init__()
        self.mean = ChannelMean(channels)
        self.var = ChannelMean(channels, add=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x - self.mean(x)
        return d * torch.rsqrt(self.var(d * d))


def _affine_into(conv: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold ``y -> weight*y + bias`` (per input channel) into a 1x1 ``conv``: returns (W', b')."""
    w = conv.weight.detach()  # [out, in, 1, 1]
    b = conv.bias.detach() if conv.bias is not None else torch.zeros(w.shape[0])
    return w * weight.view(1, -1, 1, 1), b + (w[:, :, 0, 0] @ bias)


def _split_rows(conv: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor, groups: bool = False) -> tuple[nn.Conv2d, nn.Conv2d]:
    """Two convolutions computing the first and second half of ``conv``'s output channels with (weight, bias)."""
    half = weight.shape[0] // 2
    parts = []
    for sl in (slice(0, half), slice(half, None)):
        c = _conv(
            half if groups else conv.in_channels, half, conv.kernel_size[0], groups=half if groups else 1,
            padding=conv.padding,
        )  # fmt: skip
        c.weight.data, _bias(c).data = weight[sl].clone(), bias[sl].clone()
        parts.append(c)
    return parts[0], parts[1]


class LeanBlock(nn.Module):
    """A NAFBlock on the stream x/``scale`` (its level's scale) with its pooling on x/P (the block's pool scale)."""

    def __init__(self, blk: NAFBlock, scale: float, native_ops: bool = False) -> None:
        super().__init__()
        self.native_ops = native_ops
        c = blk.conv1.in_channels
        dw = blk.conv1.out_channels
        half = dw // 2
        n1, n2 = blk.norm1, blk.norm2
        assert isinstance(n1, ScaledLayerNorm2d) and isinstance(n2, ScaledLayerNorm2d)
        s = float(scale)
        p = _pool_scale(blk.sca[0])
        # LayerNorm on the x/S stream: the scale invariance turns eps into eps / S^2
        self.norm1 = LeanLayerNorm(c, n1.eps / (s * s))
        self.norm2 = LeanLayerNorm(c, n2.eps / (s * s))
        w1, b1 = _affine_into(blk.conv1, n1.weight.detach(), n1.bias.detach())
        # depthwise conv with its second half (the gate's other factor) divided by P -> gate output is x/P
        f = torch.ones(dw)
        f[half:] = 1.0 / p
        w2, b2 = blk.conv2.weight.detach() * f.view(-1, 1, 1, 1), _bias(blk.conv2).detach() * f
        if native_ops:
            self.conv1 = _conv(c, dw)
            self.conv1.weight.data, _bias(self.conv1).data = w1, b1
            self.conv2 = _conv(dw, dw, 3, groups=dw, padding=1)
            self.conv2.weight.data, _bias(self.conv2).data = w2, b2
        else:
            self.conv1a, self.conv1b = _split_rows(blk.conv1, w1, b1)
            self.conv2a, self.conv2b = _split_rows(blk.conv2, w2, b2, groups=True)
        # the pooled input is already x/S: its means need no further scaling
        pool = copy.deepcopy(blk.sca[0])
        if isinstance(pool, SeparableGlobalMean):
            pool = SeparableGlobalMean(1.0)
        elif isinstance(getattr(pool, "global_mean", None), SeparableGlobalMean):  # TLCBoxMean
            pool.global_mean = SeparableGlobalMean(1.0)
        self.pool = pool
        attention = cast(nn.Conv2d, blk.sca[1])
        self.sca = _conv(half, half)
        self.sca.weight.data = attention.weight.detach() * p  # sca(x) = W mean(x) + b = (W P) mean(x/P) + b
        _bias(self.sca).data = _bias(attention).detach().clone()
        # conv3 sees (x/P)*sca: times P back, times beta, divided by S for the stream -> W3 * beta * P / S
        beta = blk.beta.detach().view(-1)
        self.conv3 = _conv(half, c)
        self.conv3.weight.data = blk.conv3.weight.detach() * (beta * (p / s)).view(-1, 1, 1, 1)
        _bias(self.conv3).data = _bias(blk.conv3).detach() * beta / s
        w4, b4 = _affine_into(blk.conv4, n2.weight.detach(), n2.bias.detach())
        ffn = w4.shape[0] // 2
        self.conv4a, self.conv4b = _conv(c, ffn), _conv(c, ffn)
        self.conv4a.weight.data, _bias(self.conv4a).data = w4[:ffn].clone(), b4[:ffn].clone()
        self.conv4b.weight.data, _bias(self.conv4b).data = w4[ffn:].clone(), b4[ffn:].clone()
        gamma = blk.gamma.detach().view(-1)
        self.conv5 = _conv(ffn, c)
        self.conv5.weight.data = blk.conv5.weight.detach() * (gamma / s).view(-1, 1, 1, 1)
        _bias(self.conv5).data = _bias(blk.conv5).detach() * gamma / s

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        n = self.norm1(inp)
        if self.native_ops:
            a, b = channel_halves(self.conv2(self.conv1(n)), 1)
        else:
            a, b = self.conv2a(self.conv1a(n)), self.conv2b(self.conv1b(n))
        x = a * b
        y = inp + self.conv3(x * self.sca(self.pool(x)))
        n = self.norm2(y)
        return y + self.conv5(self.conv4a(n) * self.conv4b(n))


class LeanUpsample(nn.Module):
    """Opt-in (``native_ops``): the upsampler's 1x1 conv (rows ``k*C + c`` = PixelShuffle's ``4c + k``) +
    DEPTH_TO_SPACE(2)."""

    def __init__(self, up: ZeroStuffUpsample) -> None:
        super().__init__()
        kernel = up.conv.weight.detach()
        self.conv = nn.Conv2d(kernel.shape[1], kernel.shape[0] * 4, 1, bias=False)
        self.conv.weight.data.copy_(subpixel_rows(kernel))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depth_to_space(self.conv(x), 2)


def _pool_scale(pool: nn.Module) -> float:
    if isinstance(pool, SeparableGlobalMean):
        return pool.scale
    inner = getattr(pool, "global_mean", None)  # TLCBoxMean
    if isinstance(inner, SeparableGlobalMean):
        return inner.scale
    raise TypeError(f"to_lean expects a deployed NAFNet (run to_deploy first), found a {type(pool).__name__} pool")


def to_lean(deploy: DeployedNAFNet, native_ops: bool = False) -> DeployedNAFNet:
    """A lean copy of a deployed network (see module docstring); ``deploy`` is left untouched. The per-level
    stream scales are the deployed network's LayerNorm scales (``deploy.level_scales``)."""
    if not isinstance(deploy, DeployedNAFNet):
        raise TypeError(f"to_lean expects the output of to_deploy, got a {type(deploy).__name__}")
    scales = deploy.level_scales
    lean = copy.deepcopy(deploy).eval()
    top = len(lean.encoders)
    with torch.no_grad():
        lean.intro.weight.div_(scales[0])
        _bias(lean.intro).div_(scales[0])
        lean.ending.weight.mul_(scales[0])
        for level, down in enumerate(cast(Iterable[nn.Conv2d], lean.downs)):  # level -> level + 1
            down.weight.mul_(scales[level] / scales[level + 1])
            _bias(down).div_(scales[level + 1])
        for i, up in enumerate(cast(Iterable[ZeroStuffUpsample], lean.ups)):  # level top - i -> top - i - 1
            new = LeanUpsample(up) if native_ops else copy.deepcopy(up)
            new.conv.weight.mul_(scales[top - i] / scales[top - i - 1])
            lean.ups[i] = new
        for level, blk in list(block_levels(lean)):
            _replace(lean, blk, LeanBlock(blk, scales[level], native_ops))
    return lean


def _replace(net: NAFNet, old: nn.Module, new: nn.Module) -> None:
    for seq in cast(Iterable[nn.Sequential], (*net.encoders, net.middle_blks, *net.decoders)):
        for i, blk in enumerate(seq):
            if blk is old:
                seq[i] = new
                return
    raise ValueError("block not found")  # pragma: no cover
