"""fp16 evidence for the deploy rewrites: a stress checkpoint, a headroom analysis and an fp16 emulator.

Mobile GPUs (Mali, Apple) store activations and accumulate reductions in fp16 (max 65504). Trained NAFNet-w32
(GoPro) carries a residual stream of |x| ~ 175 at its bottleneck, where the reference channel LayerNorm's
``sum_c (x - mu)^2`` (~1e5 to 1.5e7) overflows. This module builds a random checkpoint with that magnitude
(:func:`stress_checkpoint`), and :func:`fp16_evidence` runs the fp32 reference, the fp16-emulated reference and
the fp16-emulated deploy model on a photo and writes a side-by-side PNG. The analysis and the emulator live in
:mod:`.fp16_headroom` and :mod:`.fp16_emulate` and are re-exported here.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import torch

from .audit import parity_metrics
from .checkpoint import Checkpoint, checkpoint_from_model, random_checkpoint
from .fp16_emulate import emulate_fp16, round_fp16, seq_mean_fp16, seq_sum_fp16, to_fp16_twin
from .fp16_headroom import LayerReport, fp16_headroom, format_table, summarize
from .images import fit_to_size, load_image, to_nchw
from .model.config import PRESETS, NAFNetConfig
from .model.deploy import DEFAULT_SCALE, to_deploy
from .model.reference import NAFNet

__all__ = [
    "LayerReport", "bottleneck_magnitude", "emulate_fp16", "format_table", "fp16_evidence", "fp16_headroom",
    "photo_tensor", "round_fp16", "seq_mean_fp16", "seq_sum_fp16", "stress_checkpoint", "summarize",
    "to_fp16_twin",
]  # fmt: skip

DEFAULT_PHOTO = "chelsea.png"
PANEL_LABEL_HEIGHT = 18
RESIDUAL_GAIN = 10.0


def photo_tensor(image: str | Path | np.ndarray | torch.Tensor | None = None, size: int = 256) -> torch.Tensor:
    """A 1x3xHxW float32 tensor: a centre ``size`` crop of an image file (None: scikit-image's chelsea.png),
    of an H x W x 3 array in [0, 1], or an NCHW tensor passed through."""
    if isinstance(image, torch.Tensor):
        return image.float()
    if image is None:
        import skimage

        image = Path(skimage.__file__).parent / "data" / DEFAULT_PHOTO
    arr = load_image(image) if isinstance(image, (str, Path)) else np.asarray(image, np.float32)
    return torch.from_numpy(to_nchw(fit_to_size(arr, (size, size))))


def _last_level(net: NAFNet) -> int:
    return len(net.encoders) - 1


def bottleneck_magnitude(model: NAFNet, x: torch.Tensor) -> float:
    """max |x| of the bottleneck residual stream: the input of every branch (norm1/norm2) and the output of every
    block of the last encoder level and of the middle blocks, and the last down-sampler's output."""
    net_l = _last_level(model)
    blocks = list(model.encoders[net_l]) + list(model.middle_blks)
    peak = [0.0]

    def grab(t: torch.Tensor) -> None:
        peak[0] = max(peak[0], float(t.detach().abs().max()))

    handles = [model.downs[net_l].register_forward_hook(lambda m, i, o: grab(o))]
    for b in blocks:
        handles.append(b.register_forward_hook(lambda m, i, o: grab(o)))
        for norm in (b.norm1, b.norm2):
            handles.append(norm.register_forward_pre_hook(lambda m, i: grab(i[0])))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return peak[0]


def _rescale(model: NAFNet, k: float) -> NAFNet:
    """The gauge transform of :func:`stress_checkpoint`: same function, bottleneck stream times ``k``."""
    net = copy.deepcopy(model)
    lvl = _last_level(net)
    entry = net.downs[lvl - 1] if lvl > 0 else net.intro
    exit_conv = net.ups[1].conv if len(net.ups) > 1 else net.ending
    with torch.no_grad():
        entry.weight.mul_(k)
        entry.bias.mul_(k)
        net.downs[lvl].bias.mul_(k)
        for block in [*net.encoders[lvl], *net.middle_blks, *net.decoders[0]]:
            block.beta.mul_(k)
            block.gamma.mul_(k)
        exit_conv.weight.div_(k)
    return net.eval()


def stress_checkpoint(
    config: NAFNetConfig = PRESETS["GoPro-width32"],
    target: float = 175.0,
    image: str | Path | np.ndarray | torch.Tensor | None = None,
    seed: int = 0,
    iterations: int = 3,
) -> Checkpoint:
    """Random non-zero weights (:func:`random_checkpoint`) rescaled so the bottleneck residual stream peaks at
    ``max |x| ~ target`` on a real photo (default: chelsea.png, centre 256 x 256), like trained GoPro-w32.

    Construction (a gauge transform: the fp32 network computes the same function, up to LayerNorm's eps):
    LayerNorm is scale invariant, so multiplying by ``k``

    * the weight and bias of the convolution that feeds the last encoder level (``downs[-2]``; ``intro`` for a
      one-level network) multiplies the stream entering that level by ``k``;
    * ``beta`` and ``gamma`` of every block of the last encoder level, the middle and the first decoder level
      multiplies each block's increment by ``k`` too (its normalised input is unchanged), so the whole stream of
      these levels, and their skip connection, is exactly ``k`` times the original;
    * the bias of ``downs[-1]`` keeps its output at ``k`` times too (the upsampler ``ups[0]`` has no bias);

    and dividing the weight of ``ups[1]`` (``ending`` if there is no second level) by ``k`` brings the decoder
    back to the original scale. Scaling the increments too (rather than only the entry convolution) keeps the
    blocks' contributions as large relative to the stream as in the base network, so a LayerNorm that fails in
    fp16 visibly changes the output, and the output stays an ordinary image-range tensor. Note the first decoder
    level's stream is also ``k`` times its original (about 1.5x the bottleneck peak with seed 0).

    ``k`` is calibrated by measuring :func:`bottleneck_magnitude` and correcting ``k`` by ``target / measured``,
    ``iterations`` times (the map is linear, so it converges at once).
    """
    base = random_checkpoint(config, seed=seed).build_reference()
    x = photo_tensor(image)
    k = 1.0
    for _ in range(max(1, iterations)):
        measured = bottleneck_magnitude(_rescale(base, k), x)
        k *= target / measured
        if abs(measured / target - 1) < 1e-4:
            break
    return checkpoint_from_model(_rescale(base, k))


def _panel(arr: np.ndarray) -> np.ndarray:
    """H x W x 3 float -> uint8 RGB, clipped to [0, 1]; pixels with any non-finite channel in red."""
    bad = ~np.isfinite(arr).all(axis=2)
    rgb = np.round(np.clip(np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=0.0), 0, 1) * 255).astype(np.uint8)
    rgb[bad] = (255, 0, 0)
    return rgb


def _hwc(t: torch.Tensor) -> np.ndarray:
    return t[0].permute(1, 2, 0).numpy().astype(np.float32)


def _residual(a: np.ndarray, ref: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        return np.abs(a - ref) * RESIDUAL_GAIN


def save_panels(panels: list[np.ndarray], labels: list[str], out_png: str | Path) -> Path:
    """Place uint8 panels side by side (no gaps) under a strip of labels; the width is the sum of the panels'."""
    from PIL import Image, ImageDraw

    h = max(p.shape[0] for p in panels)
    canvas = Image.new("RGB", (sum(p.shape[1] for p in panels), h + PANEL_LABEL_HEIGHT), "white")
    draw = ImageDraw.Draw(canvas)
    x0 = 0
    for p, label in zip(panels, labels):
        canvas.paste(Image.fromarray(p), (x0, PANEL_LABEL_HEIGHT))
        draw.text((x0 + 3, 3), label, fill="black")
        x0 += p.shape[1]
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(str(out))
    return out


def fp16_evidence(
    ckpt: Checkpoint,
    image_path: str | Path | None,
    out_png: str | Path,
    size: int = 256,
    deploy_scale: float = DEFAULT_SCALE,
) -> dict:
    """fp32 reference vs fp16-emulated reference and deploy (``to_deploy(..., deploy_scale)``) on a centre
    ``size`` crop of ``image_path`` (None: chelsea.png); writes a 5-panel PNG (fp32, fp16 reference, fp16 deploy,
    |residual| x10 of each, non-finite pixels red) and returns parity metrics against fp32, the non-finite
    fractions, the emulation times and a headroom summary of both models."""
    x = photo_tensor(image_path, size)
    ref = ckpt.build_reference()
    dep = to_deploy(ref, deploy_scale)
    with torch.no_grad():
        y32 = ref(x)
    outs, seconds = {}, {}
    for key, net in (("reference_fp16", ref), ("deploy_fp16", dep)):
        t0 = time.perf_counter()
        outs[key] = emulate_fp16(net, x)
        seconds[key] = round(time.perf_counter() - t0, 3)
    headroom = {}
    for key, net in (("reference", ref), ("deploy", dep)):
        s = summarize(fp16_headroom(net, x))
        headroom[key] = {
            "worst_reduction": s["worst_reduction"],
            "overflow_count": s["overflow_count"],
            "underflow_count": s["underflow_count"],
        }
    a32, r16, d16 = _hwc(y32), _hwc(outs["reference_fp16"]), _hwc(outs["deploy_fp16"])
    metrics = {k: parity_metrics(v.numpy(), y32.numpy()) for k, v in outs.items()}
    png = save_panels(
        [_panel(a32), _panel(r16), _panel(d16), _panel(_residual(r16, a32)), _panel(_residual(d16, a32))],
        [
            "fp32 reference",
            "fp16 emulated: reference",
            f"fp16 emulated: deploy (S={deploy_scale:g})",
            f"|reference16 - fp32| x{RESIDUAL_GAIN:g}",
            f"|deploy16 - fp32| x{RESIDUAL_GAIN:g}",
        ],
        out_png,
    )
    return {
        "image": Path(image_path).name if image_path else DEFAULT_PHOTO,
        "size": size,
        "checkpoint": ckpt.name,
        "deploy_scale": deploy_scale,
        "bottleneck_max_abs": bottleneck_magnitude(ref, x),
        **metrics,
        "nonfinite_fraction": {k: float((~torch.isfinite(v)).float().mean()) for k, v in outs.items()},
        "seconds": seconds,
        "headroom": headroom,
        "png": str(png),
    }
