"""Prove a .tflite model is GPU-clean (static graph checks) and the same network as PyTorch (parity run).

Static checks read the flatbuffer only: node count, op histogram, banned ops, largest tensor rank and the ops
above 4-D, layout TRANSPOSE count, signature, file size. Parity runs the model with LiteRT and the reference
PyTorch network on the same real image and compares the outputs (correlation, max abs, PSNR).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .tflite_graph import Graph, read_graph

#: Ops known to break (or fall back from) mobile GPU delegation.
BANNED_OPS = (
    "GATHER", "GATHER_ND", "TOPK_V2", "GELU", "ERF", "WHERE", "SELECT", "SELECT_V2", "BROADCAST_TO", "POW",
    "TRANSPOSE_CONV", "CAST", "EMBEDDING_LOOKUP", "RFFT2D", "FFT", "STFT", "COMPLEX", "RFFT", "IRFFT", "CUMSUM",
)  # fmt: skip
MAX_GPU_RANK = 4

#: Parity thresholds against the PyTorch reference, by weight precision.
PARITY_THRESHOLDS = {
    "fp32": {"corr": 0.999999, "max_abs": 1e-4},
    "fp16": {"corr": 0.9999, "max_abs": None},
}


@dataclass
class StaticAudit:
    graph: Graph

    @property
    def banned(self) -> dict[str, int]:
        hist = self.graph.op_histogram()
        return {op: n for op, n in hist.items() if op in BANNED_OPS or op.startswith("CUSTOM")}

    @property
    def ops_above_4d(self) -> dict[str, int]:
        return self.graph.ops_above_rank(MAX_GPU_RANK)

    @property
    def gpu_clean(self) -> bool:
        return not self.banned and not self.ops_above_4d

    @property
    def precision(self) -> str:
        return "fp16" if any(t.dtype == "FLOAT16" for t in self.graph.tensors) else "fp32"

    def summary(self) -> dict:
        g = self.graph
        return {
            "gpu_clean": self.gpu_clean,
            "node_count": g.node_count,
            "transpose_count": g.op_histogram().get("TRANSPOSE", 0),
            "banned_ops": self.banned,
            "max_rank": g.max_rank(),
            "ops_above_4d": self.ops_above_4d,
            "weight_precision": self.precision,
            "file_size": g.file_size,
            "io": g.io(),
            "signatures": g.signatures,
            "op_histogram": g.op_histogram(),
        }


def static_audit(model: str | Path | bytes) -> StaticAudit:
    return StaticAudit(read_graph(model))


def parity_metrics(out: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """corr (Pearson over all values), max abs difference, and PSNR of ``out`` against ``ref`` (peak 1.0)."""
    a = np.asarray(out, np.float64).ravel()
    b = np.asarray(ref, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"output shapes differ: {np.shape(out)} vs {np.shape(ref)}")
    finite = bool(np.isfinite(a).all())
    if not finite:
        return {"corr": float("nan"), "max_abs": float("inf"), "psnr": float("-inf"), "finite": False}
    corr = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float(np.array_equal(a, b))
    mse = float(np.mean((a - b) ** 2))
    psnr = float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))
    return {"corr": corr, "max_abs": float(np.max(np.abs(a - b))), "psnr": psnr, "finite": True}


def parity_passes(metrics: dict[str, float], precision: str) -> bool:
    th = PARITY_THRESHOLDS[precision]
    if not metrics.get("finite", True):
        return False
    ok = metrics["corr"] >= th["corr"]
    if th["max_abs"] is not None:
        ok = ok and metrics["max_abs"] <= th["max_abs"]
    return ok


@dataclass
class ParityResult:
    backend: str
    image: str
    metrics: dict[str, float]
    precision: str
    passed: bool
    thresholds: dict = field(default_factory=dict)
    fully_accelerated: bool | None = None
    seconds: float | None = None
    error: str | None = None


@dataclass
class AuditReport:
    model: str
    static: dict
    parity: list[ParityResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        ok = bool(self.static["gpu_clean"]) and all(p.passed for p in self.parity)
        return ok and all(p.fully_accelerated is not False for p in self.parity)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "passed": self.passed,
            "static": self.static,
            "parity": [asdict(p) for p in self.parity],
        }

    def format_text(self) -> str:
        s = self.static
        lines = [
            f"model        {self.model}  ({s['file_size'] / 1e6:.2f} MB, {s['weight_precision']} weights)",
            f"signature    {_fmt_io(s['io'])}",
            f"nodes        {s['node_count']}  (TRANSPOSE: {s['transpose_count']})",
            "ops          " + ", ".join(f"{k} {v}" for k, v in s["op_histogram"].items()),
            f"banned ops   {_fmt_counts(s['banned_ops']) or 'none'}",
            f"max rank     {s['max_rank']}" + (f"  above 4-D: {_fmt_counts(s['ops_above_4d'])}" if s["ops_above_4d"] else ""),
            f"GPU-clean    {'yes' if s['gpu_clean'] else 'NO'}",
        ]  # fmt: skip
        for p in self.parity:
            m = p.metrics
            acc = "" if p.fully_accelerated is None else f", fully accelerated: {'yes' if p.fully_accelerated else 'NO'}"
            if p.error:
                lines.append(f"parity       {p.backend}: not run, the accelerator refused the model -> FAIL")
                continue
            lines.append(
                f"parity       {p.backend} vs PyTorch reference on {p.image}: corr {m['corr']:.8f}, "
                f"max abs {m['max_abs']:.3g}, PSNR {m['psnr']:.2f} dB{acc} -> {'pass' if p.passed else 'FAIL'}"
            )
        lines.append(f"verdict      {'PASS' if self.passed else 'FAIL'}")
        return "\n".join(lines)


def _fmt_counts(d: dict[str, int]) -> str:
    return ", ".join(f"{k} x{v}" for k, v in d.items())


def _fmt_io(io: dict) -> str:
    def one(t: dict) -> str:
        return f"{t['name']} {t['shape']} {t['dtype'].lower()}"

    return " ; ".join(one(t) for t in io["inputs"]) + " -> " + " ; ".join(one(t) for t in io["outputs"])


def run_parity(
    model_path: str | Path,
    reference,
    image_path: str | Path,
    accelerator: str = "cpu",
    threads: int = 2,
    precision: str | None = None,
) -> ParityResult:
    """Run ``model_path`` with LiteRT and ``reference`` (a Checkpoint) in PyTorch on the same image crop."""
    return run_parity_many(model_path, reference, [image_path], accelerator, threads, precision)[0]


def run_parity_many(
    model_path: str | Path,
    reference,
    images: list[str | Path],
    accelerator: str = "cpu",
    threads: int = 2,
    precision: str | None = None,
    reference_outputs: dict | None = None,
) -> list[ParityResult]:
    """:func:`run_parity` for several images with one compiled model and one reference network.

    ``reference_outputs`` (optional, a dict filled in place) caches the PyTorch output per image, so a second
    backend (GPU after CPU) does not run the reference again.
    """
    import time

    import torch

    from .errors import ModelFileError
    from .images import fit_to_size, load_image, to_nchw
    from .runtime import LiteRTModel

    precision = precision or static_audit(model_path).precision
    cache = reference_outputs if reference_outputs is not None else {}
    try:
        model = LiteRTModel(model_path, accelerator=accelerator, threads=threads)
    except ModelFileError as e:
        if accelerator != "gpu":
            raise
        # GPU alone: a graph the GPU cannot take whole is refused at compile time (no CPU fallback).
        return [
            ParityResult(
                backend=f"LiteRT {accelerator.upper()}",
                image=Path(p).name,
                metrics={"corr": float("nan"), "max_abs": float("inf"), "psnr": float("-inf"), "finite": False},
                precision=precision,
                passed=False,
                thresholds=PARITY_THRESHOLDS[precision],
                fully_accelerated=False,
                error=str(e),
            )
            for p in images
        ]
    results, net = [], None
    try:
        for image_path in images:
            key = str(image_path)
            x = to_nchw(fit_to_size(load_image(image_path, model.io.channels), model.size))
            t0 = time.perf_counter()
            out = model.run(x)
            seconds = time.perf_counter() - t0
            if key not in cache:
                if net is None:
                    net = reference.build_reference()
                with torch.no_grad():
                    cache[key] = net(torch.from_numpy(x)).numpy()
            fully = model.is_fully_accelerated() if accelerator == "gpu" else None
            metrics = parity_metrics(out, cache[key])
            results.append(
                ParityResult(
                    backend=f"LiteRT {accelerator.upper()}",
                    image=Path(image_path).name,
                    metrics=metrics,
                    precision=precision,
                    passed=parity_passes(metrics, precision),
                    thresholds=PARITY_THRESHOLDS[precision],
                    fully_accelerated=fully,
                    seconds=round(seconds, 3),
                )
            )
    finally:
        model.close()
    return results


def audit(
    model_path: str | Path,
    reference=None,
    images: list[str | Path] | None = None,
    gpu: bool = False,
    threads: int = 2,
) -> AuditReport:
    """Static audit of ``model_path``; with ``reference`` and ``images``, LiteRT CPU (and GPU) parity too."""
    st = static_audit(model_path)
    report = AuditReport(model=Path(model_path).name, static=st.summary())
    if reference is not None and images:
        refs: dict = {}  # PyTorch outputs per image, shared by the CPU and GPU runs
        cpu = run_parity_many(model_path, reference, images, "cpu", threads, st.precision, refs)
        gpu_runs = run_parity_many(model_path, reference, images, "gpu", threads, st.precision, refs) if gpu else []
        for i, res in enumerate(cpu):  # report order: per image, CPU then GPU
            report.parity.append(res)
            if gpu_runs:
                report.parity.append(gpu_runs[i])
    return report
