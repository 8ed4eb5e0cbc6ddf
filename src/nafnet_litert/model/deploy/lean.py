"""Rewrite (d): the lean deploy graph — every constant scale folded into a convolution, nothing that does nothing.

Built from a deployed network (the output of :func:`~.to_deploy`); the same function in real arithmetic:

* **Residual stream kept at x/S.** The intro conv is divided by S (power of two) and the ending conv multiplied
  by S, downsampling biases divided by S, and every residual branch's last conv (``conv3``/``conv5``, which
  also absorb ``beta``/``gamma``) divided by S. The upsampler and skips are linear without bias, so the whole
  stream is x/S at no op cost and each LayerNorm reduces over values of magnitude |x|/S (fp16-safe).
* **LayerNorm in 6 ops.** ``mu = conv_mean(x)`` (1x1 conv C->1, weights 1/C: a mean whose fp16 accumulator
  never exceeds max|x|), ``d = x - mu``, ``v = conv_mean(d*d) + eps/S^2`` (the eps is the conv's bias),
  ``y = d * rsqrt(v)``. Its affine (weight, bias) is folded into the following 1x1 conv (conv1 / conv4):
  ``W (a*y + b) + c = (W a) y + (W b + c)``. LayerNorm is scale invariant, so eps/S^2 keeps it exact.
* **Channel attention on x/S.** The gate's second half is produced by the depthwise conv already divided by S,
  so the pooled input is x/S; the attention conv and ``conv3`` take the factor S back in their weights.
* **SimpleGate of the FFN** without SLICEs: ``conv4`` is split into its two halves; the first gate's halves come
  from one SPLIT (:mod:`.native_ops`) instead of two SLICEs.
* **Upsampler** as its 1x1 conv (rows already in sub-pixel-major order, see :mod:`.upsample`) plus one
  DEPTH_TO_SPACE (:mod:`.native_ops`), instead of SLICE/RESIZE_NEAREST/MUL/ADD: 2 ops instead of 20.

Max abs difference to the deploy network in fp32 is at the level of rounding (~1e-6 on unit-range outputs).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..reference import NAFBlock, NAFNet
from .layernorm import DEFAULT_SCALE, ScaledLayerNorm2d
from .native_ops import channel_halves, depth_to_space
from .pooling import SeparableGlobalMean
from .upsample import InterleaveUpsample


def _conv(cin: int, cout: int, k: int = 1, groups: int = 1, bias: bool = True, **kw) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, groups=groups, bias=bias, **kw)


class ChannelMean(nn.Conv2d):
    """Mean over channels as a 1x1 convolution C -> 1 (weights 1/C), plus a constant (its bias)."""

    def __init__(self, channels: int, add: float = 0.0) -> None:
        super().__init__(channels, 1, 1, bias=True)
        self.weight.data.fill_(1.0 / channels)
        self.bias.data.fill_(add)


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


class LeanBlock(nn.Module):
    def __init__(self, blk: NAFBlock, scale: float) -> None:
        super().__init__()
        c = blk.conv1.in_channels
        dw = blk.conv1.out_channels
        half = dw // 2
        n1, n2 = blk.norm1, blk.norm2
        assert isinstance(n1, ScaledLayerNorm2d) and isinstance(n2, ScaledLayerNorm2d)
        s = float(scale)
        # LayerNorm on the x/S stream: the scale invariance turns eps into eps / S^2
        self.norm1 = LeanLayerNorm(c, n1.eps / (s * s))
        self.norm2 = LeanLayerNorm(c, n2.eps / (s * s))
        self.conv1 = _conv(c, dw)
        self.conv1.weight.data, self.conv1.bias.data = _affine_into(blk.conv1, n1.weight.detach(), n1.bias.detach())
        # depthwise conv with its second half (the gate's other factor) divided by S -> gate output is x/S
        self.conv2 = _conv(dw, dw, 3, groups=dw, padding=1)
        f = torch.ones(dw)
        f[half:] = 1.0 / s
        self.conv2.weight.data = blk.conv2.weight.detach() * f.view(-1, 1, 1, 1)
        self.conv2.bias.data = blk.conv2.bias.detach() * f
        # the pooled input is already x/S: its means need no further scaling
        pool = copy.deepcopy(blk.sca[0])
        if isinstance(pool, SeparableGlobalMean):
            pool = SeparableGlobalMean(1.0)
        elif isinstance(getattr(pool, "global_mean", None), SeparableGlobalMean):  # TLCBoxMean
            pool.global_mean = SeparableGlobalMean(1.0)
        self.pool = pool
        self.sca = _conv(half, half)
        self.sca.weight.data = blk.sca[1].weight.detach() * s  # sca(x) = W mean(x) + b = (W S) mean(x/S) + b
        self.sca.bias.data = blk.sca[1].bias.detach().clone()
        # conv3 sees (x/S)*sca: times S back, times beta, divided by S for the stream -> W3 * beta
        beta = blk.beta.detach().view(-1)
        self.conv3 = _conv(half, c)
        self.conv3.weight.data = blk.conv3.weight.detach() * beta.view(-1, 1, 1, 1)
        self.conv3.bias.data = blk.conv3.bias.detach() * beta / s
        w4, b4 = _affine_into(blk.conv4, n2.weight.detach(), n2.bias.detach())
        ffn = w4.shape[0] // 2
        self.conv4a, self.conv4b = _conv(c, ffn), _conv(c, ffn)
        self.conv4a.weight.data, self.conv4a.bias.data = w4[:ffn].clone(), b4[:ffn].clone()
        self.conv4b.weight.data, self.conv4b.bias.data = w4[ffn:].clone(), b4[ffn:].clone()
        gamma = blk.gamma.detach().view(-1)
        self.conv5 = _conv(ffn, c)
        self.conv5.weight.data = blk.conv5.weight.detach() * (gamma / s).view(-1, 1, 1, 1)
        self.conv5.bias.data = blk.conv5.bias.detach() * gamma / s

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.conv1(self.norm1(inp)))
        a, b = channel_halves(x, 1)
        x = a * b
        y = inp + self.conv3(x * self.sca(self.pool(x)))
        n = self.norm2(y)
        return y + self.conv5(self.conv4a(n) * self.conv4b(n))


class LeanUpsample(nn.Module):
    """The interleave upsampler's conv (rows ``k*C + c`` = PixelShuffle's ``4c + k``) + DEPTH_TO_SPACE(2)."""

    def __init__(self, up: InterleaveUpsample) -> None:
        super().__init__()
        self.conv = copy.deepcopy(up.conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depth_to_space(self.conv(x), 2)


def to_lean(deploy: NAFNet, scale: float = DEFAULT_SCALE) -> NAFNet:
    """A lean copy of a deployed network (see module docstring); ``deploy`` is left untouched."""
    lean = copy.deepcopy(deploy).eval()
    s = float(scale)
    with torch.no_grad():
        lean.intro.weight.div_(s)
        lean.intro.bias.div_(s)
        lean.ending.weight.mul_(s)
        for down in lean.downs:
            down.bias.div_(s)
        for i, up in enumerate(lean.ups):
            lean.ups[i] = LeanUpsample(up)
        for seq in (*lean.encoders, lean.middle_blks, *lean.decoders):
            for i, blk in enumerate(seq):
                seq[i] = LeanBlock(blk, s)
    return lean
