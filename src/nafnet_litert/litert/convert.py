"""Checkpoint -> deploy model -> fixed-size .tflite (litert-torch), plus a sidecar JSON that records how.

The exported signature is ``serving_default(image) -> restored``: ``image`` is float32 RGB in [0, 1], NCHW
``[1, 3, H, W]`` by default or NHWC ``[1, H, W, 3]`` with ``layout="NHWC"``; ``restored`` has the same shape.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import cast

import torch
from torch import nn

from ..facts import LAYOUTS, PRECISIONS
from ..models.checkpoint import Checkpoint, sha256_file
from ..models.config import SizeRule
from ..io.files import atomic_write_all, check_writable
from ..errors import ExportError
from ..models.deploy import DEFAULT_POOL_SCALE, DeployedNAFNet, to_deploy
from .conversions import reuse_or_convert
from .names import compact_tensor_names
from .sidecar import FORMAT, Sidecar, sidecar_path

#: What ``int8`` means (ai-edge-quantizer, weight-only): every weight is dequantized to float32 before its op
#: (DEQUANTIZE) and activations stay float32 — the same float network with smaller weights. Convolution weights are
#: per-output-channel symmetric int8 (``weight_only_wi8_afp32``). Depthwise 3x3 filters are float16 instead: per
#: channel, int8 costs 9 weight bytes plus 12 bytes of scale and zero point (a 4-byte float and an 8-byte int), so
#: fp16's 18 bytes are both smaller and 256x finer.
INT8_RECIPE = {
    "tool": "ai-edge-quantizer",
    "recipe": "weight_only_wi8_afp32",
    "weights": {"CONV_2D": "int8 per output channel", "DEPTHWISE_CONV_2D": "float16"},
    "activations": "float32",
}
#: Names the graph recipe (ops and rewrites); bump it whenever an export of the same checkpoint changes, so caches
#: keyed by it never serve an older graph.
EXPORT_RECIPE = "r4"  # r4: zero-stuff upsampler, TLC edges without a nearest resize
INPUT_NAME = "image"
OUTPUT_NAME = "restored"


def parse_size(text: str | int | tuple[int, int]) -> tuple[int, int]:
    """``"256"`` -> (256, 256); ``"720x1280"`` -> (720, 1280) (height x width)."""
    if isinstance(text, int):
        return text, text
    if isinstance(text, tuple):
        return int(text[0]), int(text[1])
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*", str(text))
    if not m:
        raise ExportError(f"bad size {text!r}: use N or HxW, e.g. 256 or 720x1280")
    h = int(m.group(1))
    w = int(m.group(2)) if m.group(2) else h
    return h, w


#: The largest export: 4096 px a side and 16.8 megapixels. A full-frame w32 graph that large needs tens of GB
#: to convert; ``deblur`` runs any photo size through a 256 px tile model instead.
MAX_EXPORT_SIDE = 4096
MAX_EXPORT_PIXELS = 4096 * 4096


def check_size(size: tuple[int, int], sizes: SizeRule) -> None:
    """An export size: within the export limit and one the network takes (its :class:`SizeRule`)."""
    h, w = size
    if h > MAX_EXPORT_SIDE or w > MAX_EXPORT_SIDE or h * w > MAX_EXPORT_PIXELS:
        raise ExportError(
            f"size {h}x{w} is above the export limit ({MAX_EXPORT_SIDE} px a side, "
            f"{MAX_EXPORT_PIXELS / 1e6:.1f} megapixels): export a tile size and let deblur tile larger photos"
        )
    problem = sizes.problem(h, w)
    if problem:
        raise ExportError(problem)


class ExportWrapper(nn.Module):
    """Names the signature (``image`` -> ``restored``) and pays the NHWC contract once, at the edges."""

    def __init__(self, net: nn.Module, layout: str = "NCHW") -> None:
        super().__init__()
        self.net = net
        self.layout = layout

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = image.permute(0, 3, 1, 2) if self.layout == "NHWC" else image
        y = self.net(x)
        if self.layout == "NHWC":
            y = y.permute(0, 2, 3, 1)
        return {OUTPUT_NAME: y}


@dataclass
class ExportResult:
    model_path: Path
    sidecar_path: Path
    sidecar: dict  # Sidecar.to_dict(): what the JSON file holds


def library_versions() -> dict[str, str]:
    out = {}
    for dist in ("nafnet-litert", "torch", "litert-torch", "ai-edge-litert", "ai-edge-quantizer", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def convert_to_tflite(
    net: nn.Module,
    size: tuple[int, int],
    precision: str = "fp16",
    layout: str = "NCHW",
    channels: int = 3,
    reuse: tuple | None = None,
) -> bytes:
    """Convert a (deploy) network at a fixed size with litert-torch and return the flatbuffer bytes.

    Every precision starts from the one float32 conversion: fp16 is litert-torch's own ``full_fp16_recipe`` applied
    to it (exactly what ``litert_torch.convert(..., quant_config=full_fp16_recipe())`` does after converting), int8
    is :func:`quantize_int8` of it. ``reuse``, a key that names the network completely (checkpoint hash and every
    export option), lets every export of one network share that conversion (:mod:`.conversions`)."""
    if precision not in PRECISIONS:
        raise ExportError(f"unknown precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    if layout not in LAYOUTS:
        raise ExportError(f"unknown layout {layout!r} (choose from {', '.join(LAYOUTS)})")
    if reuse is None:
        raw = _convert_float(net, size, layout, channels)
    else:
        versions = library_versions()
        key = (*reuse, tuple(size), layout, channels, EXPORT_RECIPE, sorted(versions.items()))
        raw = reuse_or_convert(key, lambda: _convert_float(net, size, layout, channels))
    if precision == "fp32":
        return compact_tensor_names(raw)
    if precision == "fp16":
        return compact_tensor_names(quantize_fp16(raw))
    return quantize_int8(compact_tensor_names(raw))


def _convert_float(net: nn.Module, size: tuple[int, int], layout: str, channels: int) -> bytes:
    h, w = size
    shape = (1, channels, h, w) if layout == "NCHW" else (1, h, w, channels)
    sample = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    wrapper = ExportWrapper(net, layout).eval()
    with _converter_output_captured(), torch.no_grad():
        import litert_torch  # imported here: its import prints optional-kernel warnings (torchao)

        from ..models.deploy.native_ops import register_litert

        register_litert()  # SPLIT / DEPTH_TO_SPACE for the lean graph
        edge = litert_torch.convert(wrapper, sample_args=(), sample_kwargs={INPUT_NAME: sample})
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / "model.tflite"
            edge.export(str(p))
            return p.read_bytes()


def quantize_fp16(fp32_model: bytes) -> bytes:
    """litert-torch's ``full_fp16_recipe`` (float16 weights, float32 compute), applied as litert-torch applies it:
    its recipe translated for ai-edge-quantizer, run on the float32 flatbuffer."""
    from litert_torch.generative.quantize import quant_recipes
    from litert_torch.quantize import translate_recipe

    recipe = quant_recipes.full_fp16_recipe().generative_recipe
    with _converter_output_captured():
        model = translate_recipe.quantize_model(bytes(fp32_model), translate_recipe.translate_to_ai_edge_recipe(recipe))
    if model is None:
        raise ExportError("ai-edge-quantizer returned no model")
    return bytes(model)


def quantize_int8(fp32_model: bytes) -> bytes:
    """Weight-only int8 (:data:`INT8_RECIPE`) of an fp32 flatbuffer with ai-edge-quantizer."""
    from ai_edge_quantizer import qtyping, quantizer, recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    ops = qtyping.TFLOperationName
    rm = recipe_manager.RecipeManager()
    rm.add_weight_only_config(regex=".*", operation_name=ops.ALL_SUPPORTED, num_bits=8)  # = weight_only_wi8_afp32
    rm.add_weight_only_config(
        regex=".*", operation_name=ops.DEPTHWISE_CONV_2D, num_bits=16, algorithm_key=AlgorithmName.FLOAT_CASTING
    )
    with _converter_output_captured():
        q = quantizer.Quantizer(bytes(fp32_model), rm.get_quantization_recipe())
        model = q.quantize(enable_progress_bar=False, enable_progress_report=False).quantized_model
    if model is None:
        raise ExportError("ai-edge-quantizer returned no model")
    return bytes(model)


@contextlib.contextmanager
def _converter_output_captured():
    """litert-torch prints a progress tree and the quantizer a size report on stdout; our callers print their own
    summary. ``NAFNET_LITERT_VERBOSE=1`` shows them."""
    if os.environ.get("NAFNET_LITERT_VERBOSE"):
        yield
        return
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        from litert_torch import _config  # noqa: PLC2701 - the progress switch has no public setter

        old = _config.config.show_progress
        _config.config.show_progress = False
        try:
            yield
        finally:
            _config.config.show_progress = old


def export(
    ckpt: Checkpoint,
    output: str | Path,
    size: str | int | tuple[int, int] = (256, 256),
    precision: str = "fp16",
    layout: str = "NCHW",
    scale: float | list[float] | str = "auto",
    tlc: bool = False,
    tlc_train_size: int = 256,
    lean: bool = True,
    native_ops: bool = False,
    straight: bool = False,
) -> ExportResult:
    """Export ``ckpt`` to ``output`` (.tflite) and write ``output.json`` beside it. Atomic: no partial files.

    ``tlc=True`` exports megvii's NAFNetLocal: TLC local pooling (:mod:`..models.deploy.tlc_pool`) with windows fixed
    from ``tlc_train_size`` (the size the checkpoint was trained at). ``lean=True`` (default) folds every constant
    scale and affine into convolutions (:mod:`..models.deploy.lean`); ``lean=False`` exports the three core rewrites
    as they are. ``native_ops=True`` (lean only) uses SPLIT and DEPTH_TO_SPACE, which phones are documented to
    reject: the audit fails such a model; it is for desktop/browser WebGPU. ``straight=True`` converts the reference
    network with no rewrite at all (what a plain litert-torch conversion gives): a baseline the audit should
    fail in fp16, never a model to ship.
    """
    from .static_audit import static_audit

    output = Path(output)
    size = parse_size(size)
    check_size(size, ckpt.config.sizes)
    layout = layout.upper()
    if output.suffix != ".tflite":
        raise ExportError(f"output must end in .tflite, got {output.name}")
    if not output.parent.exists():
        raise ExportError(f"output folder does not exist: {output.parent}")
    check_writable(output.parent)
    if native_ops and not lean:
        raise ExportError("native ops (SPLIT, DEPTH_TO_SPACE) exist only in the lean graph: drop --no-lean")
    if straight and (tlc or native_ops):
        raise ExportError("a straight conversion is the reference network as is: no --tlc or --native-ops")
    t0 = time.perf_counter()
    if straight:
        net: nn.Module = ckpt.build_reference()
        lean = False
        deploy_scales: list[float] = []  # none: the sidecar records no rewrites
    else:
        deploy = _deploy_network(ckpt, scale, tlc, tlc_train_size, lean, native_ops)
        net, deploy_scales = deploy, deploy.level_scales
    reuse = (_network_key(ckpt), repr(scale), tuple(deploy_scales), tlc, tlc_train_size, lean, native_ops, straight)
    buf = convert_to_tflite(net, size, precision, layout, ckpt.config.img_channel, reuse=reuse)
    seconds = time.perf_counter() - t0
    summary = static_audit(buf).summary()
    sidecar = Sidecar(
        format=FORMAT,
        recipe=EXPORT_RECIPE,
        model=output.name,
        architecture=ckpt.config.describe(),
        config=ckpt.config.to_dict(),
        size=size,
        precision=precision,
        quantization=INT8_RECIPE if precision == "int8" else None,
        layout=layout,
        signature=_signature(_shape(layout, ckpt.config.img_channel, size)),
        rewrites=None if straight else _rewrites_sidecar(deploy_scales, scale, lean, native_ops),
        straight=straight,
        tlc=_tlc_sidecar(ckpt.config, size, tlc_train_size) if tlc else None,
        checkpoint={"file": ckpt.path.name if ckpt.path else None, "sha256": ckpt.sha256},
        model_sha256=_sha256_bytes(buf),
        file_size=len(buf),
        convert_seconds=round(seconds, 1),
        versions=library_versions(),
        audit=summary,
    )
    path = sidecar_path(output)
    atomic_write_all({output: buf, path: sidecar.to_json().encode()})  # a pair
    return ExportResult(output, path, sidecar.to_dict())


def _network_key(ckpt: Checkpoint) -> str:
    """A hash of the checkpoint's configuration and tensors as they are now (not its file's hash: a loaded
    checkpoint's tensors can be changed in memory)."""
    import hashlib

    h = hashlib.sha256(repr(ckpt.config.to_dict()).encode())
    for name in sorted(ckpt.state_dict):
        t = ckpt.state_dict[name].detach().cpu().contiguous()
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


def _deploy_network(
    ckpt: Checkpoint,
    scale: float | list[float] | str,
    tlc: bool,
    tlc_train_size: int,
    lean: bool,
    native_ops: bool,
) -> DeployedNAFNet:
    """The checkpoint's network with the core rewrites (:func:`to_deploy`), then TLC pooling and the lean folding
    where asked: what :func:`export` converts unless ``straight``."""
    try:
        deploy = to_deploy(ckpt.build_reference(), scale=scale)
    except ValueError as e:
        raise ExportError(str(e)) from None
    if tlc:
        from ..models.deploy.tlc_pool import to_tlc_deploy

        try:
            # typed NAFNet -> NAFNet, but its deep copy of a DeployedNAFNet keeps that type
            deploy = cast(DeployedNAFNet, to_tlc_deploy(deploy, train_size=tlc_train_size))
        except ValueError as e:
            raise ExportError(str(e)) from None
    if lean:
        from ..models.deploy.lean import to_lean

        deploy = to_lean(deploy, native_ops=native_ops)
    return deploy


def _rewrites_sidecar(deploy_scales, scale, lean: bool, native_ops: bool) -> dict:
    return {
        "layernorm_scale": list(deploy_scales),
        "scale_mode": "auto" if scale == "auto" else "fixed",
        "pool_scale": DEFAULT_POOL_SCALE,
        "upsample": "depth_to_space" if native_ops else "zero_stuff",
        "gate": ("split" if native_ops else "split_convs") if lean else "slices",
        "lean": lean,
        "native_ops": native_ops,
    }


def _tlc_sidecar(config, size: tuple[int, int], train_size: int) -> dict:
    from ..models.tlc import BASE_RATIO, tlc_kernels, tlc_pool_is_global

    levels = []
    for level, k in enumerate(tlc_kernels(config, train_size, BASE_RATIO)):
        fh, fw = size[0] >> level, size[1] >> level
        pool = "global" if tlc_pool_is_global(k, fh, fw) else "local"
        levels.append({"level": level, "kernel": list(k), "feature": [fh, fw], "pool": pool})
    return {"train_size": train_size, "base_ratio": BASE_RATIO, "levels": levels}


def _signature(io_shape: list[int]) -> dict:
    """The sidecar's record of the signature: ``image`` in, ``restored`` out, both ``io_shape``."""
    return {
        "key": "serving_default",
        "input": {"name": INPUT_NAME, "shape": io_shape},
        "output": {"name": OUTPUT_NAME, "shape": list(io_shape)},
        "range": "float32 RGB in [0, 1]",
    }


def _shape(layout: str, c: int, size: tuple[int, int]) -> list[int]:
    return [1, c, size[0], size[1]] if layout == "NCHW" else [1, size[0], size[1], c]


def _sha256_bytes(buf: bytes) -> str:
    import hashlib

    return hashlib.sha256(buf).hexdigest()


__all__ = ["ExportResult", "export", "convert_to_tflite", "parse_size", "check_size", "sha256_file"]
