"""Time exact upsampler forms in the full lean GoPro-w32 graph (random weights, fp32, 256²), in one process.

    python scripts/upsampler_study.py [--runs 9] [--threads 2]

Each form replaces the four decoder upsamplers of the same lean network; the files are converted with the same
litert-torch call and timed alternately on LiteRT's CPU (XNNPACK), so the machine's drift hits all forms alike.
The forms (all exact against conv1x1 + PixelShuffle):

* ``off_grid``: the former default: one nearest 2x resize of the conv output, four channel slices, parity masks
  that keep each group at its sub-pixel offset (reads the resize off its grid: fails the audit's ``forms`` check);
* ``seed``: litert-samples' NAFNet build: the 1x1 conv, then ZeroStuffConvT2d of PixelShuffle's fixed 0/1
  ConvTranspose (zero-stuff on 2C channels, a 2x2 conv 2C -> C/2);
* ``shipped``: :class:`nafnet_litert.models.deploy.upsample.ZeroStuffUpsample`, the 1x1 conv folded into the 2x2
  conv (zero-stuff on C channels with the mask's row and column factors, a 2x2 conv C -> C/2).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nafnet_litert.litert.convert import convert_to_tflite
from nafnet_litert.litert.forms import nearest_reads
from nafnet_litert.litert.graph import read_graph
from nafnet_litert.litert.runtime import LiteRTModel
from nafnet_litert.models import PRESETS
from nafnet_litert.models.checkpoint import random_checkpoint
from nafnet_litert.models.deploy import to_deploy
from nafnet_litert.models.deploy.lean import to_lean
from nafnet_litert.models.deploy.upsample import ZeroStuffUpsample
from nafnet_litert.models.reference import Upsample


def _const(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, np.float32))


class OffGrid(nn.Module):
    def __init__(self, up: Upsample) -> None:
        super().__init__()
        w = up.conv.weight.detach()
        c = w.shape[0] // 4
        self.conv = nn.Conv2d(w.shape[1], w.shape[0], 1, bias=False)
        self.conv.weight.data.copy_(w[[4 * o + k for k in range(4) for o in range(c)]])

    def forward(self, x):
        h, w = x.shape[-2:]
        s = F.interpolate(self.conv(x), size=(2 * h, 2 * w), mode="nearest").chunk(4, dim=1)
        odd_c = _const((np.arange(2 * w) % 2).reshape(1, 1, 1, -1))
        odd_r = _const((np.arange(2 * h) % 2).reshape(1, 1, -1, 1))
        return (s[0] * (1 - odd_c) + s[1] * odd_c) * (1 - odd_r) + (s[2] * (1 - odd_c) + s[3] * odd_c) * odd_r


class Seed(nn.Module):
    def __init__(self, up: Upsample) -> None:
        super().__init__()
        w = up.conv.weight.detach()
        self.conv = nn.Conv2d(w.shape[1], w.shape[0], 1, bias=False)
        self.conv.weight.data.copy_(w)
        c4 = w.shape[0]
        k = np.zeros((c4 // 4, c4, 2, 2), np.float32)
        for o in range(c4 // 4):
            for i in range(2):
                for j in range(2):
                    k[o, 4 * o + 2 * i + j, 1 - i, 1 - j] = 1.0
        self.register_buffer("k", _const(k))

    def forward(self, x):
        y = self.conv(x)
        h, w = y.shape[-2:]
        grid = np.zeros((1, 1, 2 * h, 2 * w), np.float32)
        grid[..., ::2, ::2] = 1.0  # the seed's one 2-D mask
        z = F.interpolate(y, size=(2 * h, 2 * w), mode="nearest") * _const(grid)
        return F.conv2d(z, self.k, padding=1)[:, :, : 2 * h, : 2 * w]


FORMS = {"off_grid": OffGrid, "seed": Seed, "shipped": ZeroStuffUpsample.from_reference}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    deploy = to_deploy(random_checkpoint(PRESETS["GoPro-width32"], seed=0).build_reference(), scale=1.0)
    x = np.random.default_rng(0).random((1, 3, 256, 256), dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        models, outs = {}, {}
        for name, make in FORMS.items():
            lean = to_lean(deploy)
            for i, up in enumerate(lean.ups):
                ref = Upsample(up.conv.in_channels).eval()
                torch.manual_seed(i)
                ref.conv.weight.data.normal_(0, 0.05)
                lean.ups[i] = make(ref)
            path = Path(tmp) / f"{name}.tflite"
            path.write_bytes(convert_to_tflite(lean, (256, 256), "fp32"))
            g = read_graph(path)
            on = sum(r.on_grid for r in nearest_reads(g))
            print(f"{name:9s} {g.node_count} nodes, nearest resizes read on their grid: {on}/4", flush=True)
            models[name] = LiteRTModel(path, "cpu", threads=args.threads)
            outs[name] = models[name].run(x)
        for name in FORMS:
            d = float(np.abs(outs[name] - outs["shipped"]).max())
            print(f"{name:9s} max abs vs shipped on the same input: {d:.2g}")
        times = {n: [] for n in FORMS}
        for _ in range(args.runs):
            for name, m in models.items():
                t0 = time.perf_counter()
                m.run(x)
                times[name].append((time.perf_counter() - t0) * 1e3)
        base = statistics.median(times["shipped"])
        for name, ts in times.items():
            med = statistics.median(ts)
            print(f"{name:9s} median {med:6.1f} ms  min {min(ts):6.1f} ms  ({med / base:.2f}x shipped)")
        for m in models.values():
            m.close()


if __name__ == "__main__":
    main()
