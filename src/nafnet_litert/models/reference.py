"""The reference NAFNet: megvii's semantics, written here from the paper (Chen et al., ECCV 2022) and the
published behaviour of the official code.

Semantics that matter for exactness:

* ``LayerNorm2d`` normalises over the channel axis only, with a biased variance and ``eps = 1e-6`` inside the
  square root, then applies a per-channel affine.
* ``SimpleGate`` splits the channels in two halves and multiplies them.
* Simplified channel attention: global average pool, a 1x1 convolution, and a multiplication.
* Each block has two residual branches scaled by ``beta`` and ``gamma`` (zero at initialisation).
* The network adds its input to its output, and zero-pads the input at the bottom/right to a multiple of
  ``2**levels``, cropping the result back.

Parameter names match the official state dicts (``intro``, ``encoders.i.j``, ``downs.i``, ``middle_blks.j``,
``ups.i.0``, ``decoders.i.j``, ``ending``; in a block ``conv1``…``conv5``, ``sca.1``, ``norm1``, ``norm2``,
``beta``, ``gamma``), so checkpoints load strictly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import NAFNetConfig

LAYERNORM_EPS = 1e-6


class LayerNorm2d(nn.Module):
    """Channel LayerNorm over NCHW: statistics over C at every pixel."""

    def __init__(self, channels: int, eps: float = LAYERNORM_EPS) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        y = (x - mu) / (var + self.eps).sqrt()
        return self.weight.view(1, -1, 1, 1) * y + self.bias.view(1, -1, 1, 1)


class SimpleGate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class GlobalAvgPool(nn.Module):
    """Channel-attention pooling: the mean over all pixels, kept as a 1x1 map (AdaptiveAvgPool2d(1))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x, 1)


class NAFBlock(nn.Module):
    def __init__(self, c: int, dw_expand: int = 2, ffn_expand: int = 2) -> None:
        super().__init__()
        dw = c * dw_expand
        ffn = c * ffn_expand
        self.conv1 = nn.Conv2d(c, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.conv3 = nn.Conv2d(dw // 2, c, 1)
        self.sca = nn.Sequential(GlobalAvgPool(), nn.Conv2d(dw // 2, dw // 2, 1))
        self.sg = SimpleGate()
        self.conv4 = nn.Conv2d(c, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // 2, c, 1)
        # typed as any module: the deploy rewrites swap in their own norms (ScaledLayerNorm2d, LeanLayerNorm)
        self.norm1: nn.Module = LayerNorm2d(c)
        self.norm2: nn.Module = LayerNorm2d(c)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.sg(self.conv2(self.conv1(self.norm1(inp))))
        x = self.conv3(x * self.sca(x))
        y = inp + x * self.beta
        x = self.conv5(self.sg(self.conv4(self.norm2(y))))
        return y + x * self.gamma


class Upsample(nn.Module):
    """1x1 convolution to 2C channels, then PixelShuffle(2): C -> C/2 channels at twice the resolution.

    Indexed ``ups.i.0.weight`` in checkpoints (a Sequential in the official code).
    """

    def __init__(self, chan: int) -> None:
        super().__init__()
        self.add_module("0", nn.Conv2d(chan, chan * 2, 1, bias=False))
        self.add_module("1", nn.PixelShuffle(2))

    @property
    def conv(self) -> nn.Conv2d:
        return getattr(self, "0")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, "1")(self.conv(x))


class NAFNet(nn.Module):
    """NAFNet for any :class:`NAFNetConfig`. Input and output: NCHW float RGB, any H and W."""

    def __init__(self, config: NAFNetConfig = NAFNetConfig()) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.intro = nn.Conv2d(config.img_channel, w, 3, padding=1)
        self.ending = nn.Conv2d(w, config.img_channel, 3, padding=1)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        chan = w
        for n in config.enc_blocks:
            self.encoders.append(nn.Sequential(*[NAFBlock(chan) for _ in range(n)]))
            self.downs.append(nn.Conv2d(chan, 2 * chan, 2, 2))
            chan *= 2
        self.middle_blks = nn.Sequential(*[NAFBlock(chan) for _ in range(config.middle_blocks)])
        for n in config.dec_blocks:
            self.ups.append(Upsample(chan))
            chan //= 2
            self.decoders.append(nn.Sequential(*[NAFBlock(chan) for _ in range(n)]))

    @property
    def padder_size(self) -> int:
        return self.config.padder_size

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Zero-pad bottom/right to a multiple of ``padder_size`` (a no-op, traced away, when already aligned)."""
        p = self.padder_size
        h, w = x.shape[-2:]
        ph, pw = (p - h % p) % p, (p - w % p) % p
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        return x

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        h, w = inp.shape[-2:]
        inp = self.pad(inp)
        x = self.intro(inp)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle_blks(x)
        for decoder, up, skip in zip(self.decoders, self.ups, reversed(skips)):
            x = decoder(up(x) + skip)
        x = self.ending(x) + inp
        return x[:, :, :h, :w]


def build_reference(config: NAFNetConfig, state_dict: dict[str, torch.Tensor] | None = None) -> NAFNet:
    """A reference NAFNet in eval mode, loaded strictly from ``state_dict`` when given."""
    model = NAFNet(config)
    if state_dict is not None:
        model.load_state_dict(state_dict, strict=True)
    return model.eval()
