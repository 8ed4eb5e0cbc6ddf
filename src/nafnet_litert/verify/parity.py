"""Is the file the same network as PyTorch? Outputs of the file on a backend (:func:`run_backend`), of the PyTorch
reference (:func:`reference_outputs`, and its :func:`int8_twin`), the numbers that compare them
(:func:`parity_metrics`) and the thresholds that judge them (:data:`PARITY_THRESHOLDS`,
:data:`GPU_FP16_THRESHOLDS`). The thresholds are module constants, so the CLI holds no pass/fail policy of its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..litert.graph import read_graph
from ..metrics import psnr

#: Parity against the PyTorch reference, by weight precision (CPU, and the GPU with enforce_f32).
PARITY_THRESHOLDS = {
    "fp32": {"corr": 0.999999, "max_abs": 1e-4},
    "fp16": {"corr": 0.9999, "max_abs": None},
    # weight-only int8 is judged against the error int8 weights cause in the network itself: the PyTorch reference
    # with the same rounding (its "int8 twin", :func:`int8_twin`). The file may be at most 3 dB (2x the squared
    # error) and 2x the max abs further from the fp32 reference than its twin. Measured on chelsea (256x256):
    # random GoPro-w32 file 23.51 dB / max abs 0.380, its twin 22.54 dB / 0.387 (a random network amplifies the
    # rounding: corr 0.9991); the bundled model file 77.69 dB / 5.1e-4, twin 74.93 dB / 5.8e-4. Both sit inside
    # with room (file/twin max abs 0.98x and 0.89x); a file whose weights were rounded twice as coarsely would not.
    "int8": {"psnr_below_twin_db": 3.0, "max_abs_over_twin": 2.0},
}

#: The GPU's fp16 pass against the PyTorch reference. Measured with Mesa 25 lavapipe on chelsea.png (256x256) and
#: a stressed GoPro-w32 (random weights; every level's largest LayerNorm channel deviation at trained GoPro-w32's
#: bottleneck value, 175): our export corr 0.99994, residual corr 0.99994 (max abs 0.09 on outputs of std 1.6:
#: fp16 rounding through a random network); a straight litert-torch conversion of the same checkpoint corr 0.865,
#: residual corr 0.861 (max abs 3.6). The residual (output - input: what the network adds) is the sharp test,
#: because a restoration network's output is mostly its input. A limit of 0.999 on both sits >= 15x from ours in
#: 1 - r (6e-5 vs 1e-3) and > 100x from the straight conversion (0.14).
#: A trained model on a photo that is already sharp adds almost nothing, so fp16 rounding alone decides the
#: residual corr: the bundled model on chelsea gives residual corr 0.9904 at max abs 5.1e-4 (an eighth of an
#: 8-bit step), and 0.99997+ on blurred GoPro crops. So a pass whose every value is within half an 8-bit step of
#: the reference (``max_abs``) passes whatever its residual corr: no 8-bit pixel can move by more than rounding.
GPU_FP16_THRESHOLDS = {"corr": 0.999, "residual_corr": 0.999, "max_abs": 0.5 / 255}


# ------------------------------------------------------------------------------------------------ numbers
def parity_metrics(out: np.ndarray, ref: np.ndarray, inp: np.ndarray | None = None) -> dict[str, float]:
    """corr (Pearson over all values), max abs difference and PSNR (peak 1.0) of ``out`` against ``ref``; with
    ``inp``, also ``residual_corr``: the correlation of ``out - inp`` with ``ref - inp`` (what the network adds)."""
    a = np.asarray(out, np.float64).ravel()
    b = np.asarray(ref, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"output shapes differ: {np.shape(out)} vs {np.shape(ref)}")
    if not np.isfinite(a).all():
        m = {"corr": float("nan"), "max_abs": float("inf"), "psnr": float("-inf"), "finite": False}
        if inp is not None:
            m["residual_corr"] = float("nan")
        return m
    m = {
        "corr": _corr(a, b),
        "max_abs": float(np.max(np.abs(a - b))),
        "psnr": psnr(a, b),
        "finite": True,
    }
    if inp is not None:
        c = np.asarray(inp, np.float64).ravel()
        m["residual_corr"] = _corr(a - c, b - c)
    return m


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() > 0 and b.std() > 0:
        return float(np.corrcoef(a, b)[0, 1])
    return float(np.array_equal(a, b))


def parity_passes(metrics: dict[str, float], precision: str, twin: dict[str, float] | None = None) -> bool:
    """``precision`` picks :data:`PARITY_THRESHOLDS`; int8 needs ``twin``, the int8 twin's metrics on the image."""
    th = PARITY_THRESHOLDS[precision]
    if not metrics.get("finite", True):
        return False
    if precision == "int8":
        if twin is None:
            raise ValueError("int8 parity is judged against the int8 twin's metrics")
        return (
            metrics["psnr"] >= twin["psnr"] - th["psnr_below_twin_db"]
            and metrics["max_abs"] <= th["max_abs_over_twin"] * twin["max_abs"]
        )
    ok = metrics["corr"] >= th["corr"]
    if th["max_abs"] is not None:
        ok = ok and metrics["max_abs"] <= th["max_abs"]
    return ok


def gpu_fp16_passes(metrics: dict[str, float]) -> bool:
    th = GPU_FP16_THRESHOLDS
    if not metrics.get("finite") or metrics["corr"] < th["corr"]:
        return False
    return metrics["residual_corr"] >= th["residual_corr"] or metrics["max_abs"] <= th["max_abs"]


# ------------------------------------------------------------------------------------------------ runs
@dataclass
class Run:
    """Outputs of one backend on every image (NCHW float32), or the error that stopped it."""

    backend: str
    outputs: list[np.ndarray] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    fully_accelerated: bool | None = None
    error: str | None = None


def run_backend(
    model_path, inputs: list[np.ndarray], accelerator: str, threads: int, gpu_precision: str = "fp16"
) -> Run:
    """``model_path`` run on every input by the CPU (XNNPACK) or the GPU accelerator alone at ``gpu_precision``; a
    model the GPU refuses is a :class:`Run` with an error, not an exception."""
    from ..errors import ModelFileError
    from ..litert.runtime import LiteRTModel

    name = "cpu" if accelerator == "cpu" else f"gpu_{gpu_precision}"
    try:
        kw = {"gpu_precision": gpu_precision} if accelerator == "gpu" else {}
        model = LiteRTModel(model_path, accelerator=accelerator, threads=threads, **kw)
    except ModelFileError as e:
        if accelerator != "gpu":
            raise
        # GPU alone: a graph the GPU cannot take whole is refused at compile time (no CPU fallback).
        return Run(name, fully_accelerated=False, error=f"the GPU accelerator refused the model: {e}")
    run = Run(name)
    try:
        for x in inputs:
            t0 = time.perf_counter()
            run.outputs.append(model.run(x))
            run.seconds.append(round(time.perf_counter() - t0, 3))
        if accelerator == "gpu":
            run.fully_accelerated = model.is_fully_accelerated()
    finally:
        model.close()
    return run


def load_inputs(model_path, images: list[str | Path]) -> list[np.ndarray]:
    """Each photo fitted to the model's input size (centre crop, or reflect-padded when smaller), NCHW float32."""
    from ..io.image import load_image
    from ..restore.pixels import fit_to_size, to_nchw
    from ..litert.runtime import infer_io
    from ..litert.sidecar import read_sidecar

    g = read_graph(model_path)
    io = infer_io(g.tensors[g.inputs[0]].shape, read_sidecar(model_path))
    return [to_nchw(fit_to_size(load_image(p, io.channels), (io.height, io.width))) for p in images]


def reference_outputs(reference, inputs: list[np.ndarray], int8: bool = False) -> list[np.ndarray]:
    """The PyTorch reference's outputs; ``int8``: its int8 twin's (:func:`int8_twin`)."""
    import torch

    net = reference.build_reference()
    if int8:
        net = int8_twin(net)
    with torch.no_grad():
        return [net(torch.from_numpy(x)).numpy() for x in inputs]


def int8_twin(net):
    """``net`` with the weights an int8 export stores (:data:`~nafnet_litert.litert.convert.INT8_RECIPE`), computed
    in PyTorch on the reference network, independently of the export path: every convolution's weight rounded to
    symmetric int8 per output channel (scale = max |w| / 127), depthwise filters rounded to float16. Activations
    stay float32, as in the file. Its distance from the fp32 reference is what int8 weights cost this network."""
    import torch

    with torch.no_grad():
        for m in net.modules():
            if not isinstance(m, torch.nn.Conv2d):
                continue
            w = m.weight
            if m.groups > 1 and m.groups == m.in_channels:
                w.copy_(w.half().float())
                continue
            scale = w.abs().amax(dim=(1, 2, 3), keepdim=True) / 127
            safe = torch.where(scale > 0, scale, torch.ones_like(scale))
            w.copy_(torch.where(scale > 0, torch.round(w / safe).clamp(-127, 127) * safe, w))
    return net


__all__ = [
    "GPU_FP16_THRESHOLDS", "PARITY_THRESHOLDS", "Run", "gpu_fp16_passes", "int8_twin", "load_inputs", "parity_metrics",
    "parity_passes", "reference_outputs", "run_backend",
]  # fmt: skip
