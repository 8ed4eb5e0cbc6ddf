"""Emulate a mobile GPU's fp16 arithmetic on a (reference or deploy) NAFNet, on the CPU.

Mobile GPU delegates (Mali, Apple) run the whole graph in fp16: every tensor is stored as fp16 and every
reduction (MEAN) is accumulated in fp16. :func:`emulate_fp16` reproduces that on a deep copy of the network:

* **Element-wise ops** (add, mul, div, sqrt, the gate, the residual updates) are computed in fp32 on fp16 values
  and rounded to fp16 straight away. For a single +, -, *, / or sqrt this is exactly IEEE fp16 (round to
  nearest even: fp32's 24 bits >= 2 * 11 + 2 make the double rounding innocuous); overflow gives +-inf, and inf
  and NaN propagate as in real fp16 (``inf - inf = NaN``, ``x / inf = 0``, ``inf * 0 = NaN``).
* **Reductions** (the channel means of both LayerNorms, the pooling means) are accumulated *sequentially* over
  the reduced axis in an fp16 accumulator (a Python loop adding fp16 slices, vectorised over the other axes), as
  a shader looping over the axis does; the sum is then divided by the exact element count and rounded to fp16
  (the count is an integer uniform on a GPU; ``65536`` itself is not even representable in fp16). A single
  reduction over two axes (``adaptive_avg_pool2d``) is one loop over H*W in row-major order.
* **Convolutions** are computed in fp32 from fp16-rounded inputs, weights and bias, and the output is rounded to
  fp16. Choice: GPU convolution kernels differ (some accumulate in fp32, some in fp16 with short partial sums),
  and with NAFNet's weights a convolution's dot product (<= 9 * C terms of size ~|x| / sqrt(fan_in)) stays far
  below fp16's range; the fp16 hazard this module studies is the long reductions, so those are emulated
  exactly and convolutions get fp16 storage only.
* Pure data movement (padding, PixelShuffle, nearest resize, slicing, the 0/1 parity masks) is exact in fp16
  and runs unchanged.

Tensors are kept as float32 holding fp16 values (``round_fp16``); only the accumulators are real ``float16``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .model.deploy import InterleaveUpsample, ScaledLayerNorm2d, SeparableGlobalMean
from .model.reference import GlobalAvgPool, LayerNorm2d, NAFBlock, NAFNet, SimpleGate, Upsample

FP16_MAX = 65504.0

__all__ = [
    "FP16_MAX", "Fp16Conv2d", "Fp16Gate", "Fp16LayerNorm", "Fp16NAFBlock", "Fp16NAFNet", "Fp16Pool",
    "Fp16ScaledLayerNorm", "emulate_fp16", "round_fp16", "seq_mean_fp16", "seq_sum_fp16", "to_fp16_twin",
]  # fmt: skip


def round_fp16(t: torch.Tensor) -> torch.Tensor:
    """Round to the nearest fp16 value (overflow -> +-inf), returned as float32."""
    return t.to(torch.float16).to(torch.float32)


def _r(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.float16).to(torch.float32)


def seq_sum_fp16(v: torch.Tensor, dims: Sequence[int]) -> torch.Tensor:
    """Sum ``v`` over ``dims`` (kept, as size 1) one element at a time in an fp16 accumulator.

    The reduced axes are walked in row-major order; every partial sum is rounded to fp16, so a sum that passes
    65504 becomes inf (and stays inf, or NaN if -inf joins it) exactly as a GPU shader's fp16 accumulator.
    """
    dims = sorted(d % v.ndim for d in dims)
    keep = [d for d in range(v.ndim) if d not in dims]
    moved = v.permute(*dims, *keep).to(torch.float16)
    n = 1
    for d in dims:
        n *= v.shape[d]
    moved = moved.reshape(n, *[v.shape[d] for d in keep])
    acc = torch.zeros(moved.shape[1:], dtype=torch.float16)
    for i in range(n):
        acc = acc + moved[i]
    out_shape = [1 if d in dims else v.shape[d] for d in range(v.ndim)]
    return acc.to(torch.float32).reshape(out_shape)


def seq_mean_fp16(v: torch.Tensor, dims: Sequence[int]) -> torch.Tensor:
    """:func:`seq_sum_fp16` divided by the exact element count, rounded to fp16."""
    n = 1
    for d in dims:
        n *= v.shape[d]
    return _r(seq_sum_fp16(v, dims) / n)


class Fp16Conv2d(nn.Module):
    """A convolution with fp16 inputs, weights and bias, computed in fp32, output rounded to fp16."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise TypeError(f"unsupported convolution padding {conv.padding!r}/{conv.padding_mode}")
        self.register_buffer("weight", _r(conv.weight.detach().float()))
        self.register_buffer("bias", None if conv.bias is None else _r(conv.bias.detach().float()))
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(_r(x), self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return _r(y)


class _Affine(nn.Module):
    def __init__(self, ln: nn.Module) -> None:
        super().__init__()
        self.register_buffer("weight", _r(ln.weight.detach().float().view(1, -1, 1, 1)))
        self.register_buffer("bias", _r(ln.bias.detach().float().view(1, -1, 1, 1)))

    def affine(self, y: torch.Tensor) -> torch.Tensor:
        return _r(_r(y * self.weight) + self.bias)


class Fp16LayerNorm(_Affine):
    """The reference LayerNorm2d in fp16: ``mean_c(x)`` and ``mean_c((x - mu)^2)`` accumulated in fp16."""

    def __init__(self, ln: LayerNorm2d) -> None:
        super().__init__(ln)
        self.eps = float(_r(torch.tensor(ln.eps)))  # 1e-6 is a subnormal in fp16 (1.013e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _r(x)
        d = _r(x - seq_mean_fp16(x, [1]))
        var = seq_mean_fp16(_r(d * d), [1])
        return self.affine(_r(d / _r(torch.sqrt(_r(var + self.eps)))))


class Fp16ScaledLayerNorm(_Affine):
    """The deploy ScaledLayerNorm2d in fp16: statistics of ``x * (1/S)`` accumulated in fp16."""

    def __init__(self, ln: ScaledLayerNorm2d) -> None:
        super().__init__(ln)
        self.inv_scale = float(_r(torch.tensor(1.0 / ln.scale)))
        self.eps = float(_r(torch.tensor(ln.eps / (ln.scale * ln.scale))))  # underflows to 0 for S = 128

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = _r(_r(x) * self.inv_scale)
        d = _r(xs - seq_mean_fp16(xs, [1]))
        v = seq_mean_fp16(_r(d * d), [1])
        return self.affine(_r(d / _r(torch.sqrt(_r(v + self.eps)))))


class Fp16Pool(nn.Module):
    """Global average pooling to 1x1 in fp16: one sequential reduction over H*W (``scale=None``, the reference)
    or, like :class:`SeparableGlobalMean`, a mean over W then over H of ``x * (1/S)``, times S."""

    def __init__(self, scale: float | None = None) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _r(x)
        if self.scale is None:
            return seq_mean_fp16(x, [2, 3])
        if self.scale != 1.0:
            x = _r(x * float(_r(torch.tensor(1.0 / self.scale))))
        m = seq_mean_fp16(seq_mean_fp16(x, [3]), [2])
        return m if self.scale == 1.0 else _r(m * self.scale)


class Fp16Gate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return _r(a * b)


class Fp16NAFBlock(nn.Module):
    """A NAFBlock whose children are already fp16 twins; its own products and residual adds are rounded."""

    def __init__(self, block: NAFBlock) -> None:
        super().__init__()
        for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "sca", "sg", "norm1", "norm2"):
            self.add_module(name, getattr(block, name))
        self.register_buffer("beta", _r(block.beta.detach().float()))
        self.register_buffer("gamma", _r(block.gamma.detach().float()))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.sg(self.conv2(self.conv1(self.norm1(inp))))
        x = self.conv3(_r(x * self.sca(x)))
        y = _r(inp + _r(x * self.beta))
        x = self.conv5(self.sg(self.conv4(self.norm2(y))))
        return _r(y + _r(x * self.gamma))


class Fp16NAFNet(nn.Module):
    """NAFNet's top-level forward with the input, skip additions and global residual rounded to fp16."""

    def __init__(self, net: NAFNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        net = self.net
        h, w = inp.shape[-2:]
        inp = _r(net.pad(inp.float()))
        x = net.intro(inp)
        skips = []
        for encoder, down in zip(net.encoders, net.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = net.middle_blks(x)
        for decoder, up, skip in zip(net.decoders, net.ups, reversed(skips)):
            x = decoder(_r(_r(up(x)) + skip))
        x = _r(net.ending(x) + inp)
        return x[:, :, :h, :w]


#: Modules that only move data (exact in fp16) and run unchanged.
_EXACT = (nn.PixelShuffle, nn.Sequential, nn.ModuleList, Upsample, InterleaveUpsample, NAFNet)


def _twin(mod: nn.Module) -> nn.Module | None:
    if isinstance(mod, nn.Conv2d):
        return Fp16Conv2d(mod)
    if isinstance(mod, LayerNorm2d):
        return Fp16LayerNorm(mod)
    if isinstance(mod, ScaledLayerNorm2d):
        return Fp16ScaledLayerNorm(mod)
    if isinstance(mod, (GlobalAvgPool, nn.AdaptiveAvgPool2d)):
        if isinstance(mod, nn.AdaptiveAvgPool2d) and mod.output_size not in (1, (1, 1)):
            raise TypeError(f"fp16 emulation supports global pooling only, got output size {mod.output_size}")
        return Fp16Pool(None)
    if isinstance(mod, SeparableGlobalMean):
        return Fp16Pool(mod.scale)
    if isinstance(mod, SimpleGate):
        return Fp16Gate()
    if isinstance(mod, _EXACT) or isinstance(mod, NAFBlock):
        return None
    raise TypeError(f"fp16 emulation does not know how to run {type(mod).__name__}")


def _swap_children(mod: nn.Module) -> None:
    for name, child in list(mod.named_children()):
        _swap_children(child)
        new = _twin(child)
        if isinstance(child, NAFBlock):
            new = Fp16NAFBlock(child)
        if new is not None:
            setattr(mod, name, new)


def to_fp16_twin(model: NAFNet) -> Fp16NAFNet:
    """A deep copy of ``model`` (reference or deploy) that runs with fp16 storage and fp16 accumulators."""
    if not isinstance(model, NAFNet):
        raise TypeError(f"expected a NAFNet, got {type(model).__name__}")
    net = copy.deepcopy(model).eval()
    _swap_children(net)
    return Fp16NAFNet(net).eval()


def emulate_fp16(model: NAFNet, x: torch.Tensor) -> torch.Tensor:
    """Run ``model`` on ``x`` (NCHW) as an fp16 mobile GPU would (see the module docstring); float32 result
    holding fp16 values, with the infs and NaNs fp16 would produce."""
    twin = to_fp16_twin(model)
    with torch.no_grad():
        return twin(torch.as_tensor(x, dtype=torch.float32))
