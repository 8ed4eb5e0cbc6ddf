"""Prove a .tflite file is phone-GPU-clean and the same network as PyTorch, on the file itself.

Every check runs on the model file the user ships; each is one entry of :attr:`AuditReport.checks`:

* ``ops`` (static): every op is in the phone-proven table of :mod:`.device_ops`. A documented rejection
  (SPLIT, DEPTH_TO_SPACE, TRANSPOSE_CONV, ...) fails; an op on neither list is "unproven on phones" and fails
  unless the caller allows unproven ops.
* ``forms``: no op in a form phones are documented to get wrong (:data:`~.device_ops.FORM_REJECTIONS`), with
  the offending node indices. A nearest resize must be read only on its stride grid, checked twice on the file:
  statically (every read goes through a mask that is zero off the grid) and dynamically (the file rewritten so that
  off-grid positions map to other pixels gives bit-identical output on the CPU: :mod:`nafnet_litert.litert.forms`).
  Forms no published phone graph contains (:data:`~.device_ops.FORMS` without evidence) are listed, not failed.
* ``rank`` (static): no tensor above rank 4 (a failure names ``RANK_ABOVE_4`` with its source).
* ``io`` (static): the image-to-image contract: one float32 input ``[1,C,H,W]`` (or ``[1,H,W,C]``), C = 1 or 3,
  and one float32 output of the same shape (a classifier or any other model fails here).
* ``parity_cpu``: LiteRT CPU (XNNPACK) against the PyTorch reference on real photos.
* ``gpu_fp32``: LiteRT's GPU accelerator *alone* (no CPU fallback) with ``enforce_f32``: residency and graph
  correctness.
* ``gpu_fp16``: the same accelerator at its default precision, on a Vulkan device with shaderFloat16, so the
  kernels store and accumulate in fp16 as a phone's do. The pass must really have run in fp16 (its output differs
  from the fp32 pass; identical output means "fp16 not exercised", an error), and must stay close to the
  reference: see :data:`GPU_FP16_THRESHOLDS` for the numbers and why.
* ``fp16_headroom``: per-op fp16 headroom of the file's own tensors (:mod:`.headroom`), with the
  checkpoint's weights and with a stressed twin exported the same way.

Without a reference the GPU passes are judged against the file's own CPU output. When ``gpu_fp16`` is resident and
really fp16 but wrong, or an op overflows fp16 in ``fp16_headroom``, the check names the rule
``FP16_REDUCTION_OVERFLOW`` (:data:`~nafnet_litert.litert.device_ops.NUMERIC_REJECTIONS`) with its source.

The thresholds are module constants, so the CLI holds no pass/fail policy of its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..jsonsafe import dumps
from ..litert.static_audit import Check, io_contract, static_audit
from ..metrics import psnr
from ..litert.graph import read_graph


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
#: The rule named when the fp16 GPU pass is resident and really fp16 but wrong, or an op overflows fp16's range.
FP16_RULE = "FP16_REDUCTION_OVERFLOW"


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


def _run_backend(model_path, inputs: list[np.ndarray], accelerator: str, threads: int, gpu_precision: str = "fp16") -> Run:
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
    from ..litert.runtime import infer_io, read_sidecar

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


# ------------------------------------------------------------------------------------------------ report
@dataclass
class AuditReport:
    model: str
    static: dict
    checks: dict[str, Check] = field(default_factory=dict)
    images: list[str] = field(default_factory=list)
    #: outputs kept for the HTML report: {"input", "reference", "cpu", "gpu_fp32", "gpu_fp16"} of the first image
    first_outputs: dict = field(default_factory=dict, repr=False)
    headroom: dict = field(default_factory=dict, repr=False)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks.values())

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "passed": self.passed,
            "checks": {k: c.to_dict() for k, c in self.checks.items()},
            "images": self.images,
            "static": self.static,
        }

    def to_json(self) -> str:
        """Strict JSON (non-finite numbers, such as the PSNR of identical outputs, as null)."""
        return dumps(self.to_dict()).rstrip("\n")

    def format_text(self) -> str:
        s = self.static
        lines = [
            f"model         {self.model}  ({s['file_size'] / 1e6:.2f} MB, {s['weight_precision']} weights)",
            f"signature     {_fmt_io(s['io'])}",
            f"nodes         {s['node_count']} ({s['node_count_without_dequantize']} without DEQUANTIZE; "
            f"TRANSPOSE: {s['transpose_count']})",
            "op histogram  " + ", ".join(f"{k} {v}" for k, v in s["op_histogram"].items()),
        ]
        for name, c in self.checks.items():
            lines.extend(_format_check(name, c))
        lines.append(f"verdict       {'PASS' if self.passed else 'FAIL'}")
        return "\n".join(lines)


def _verdict(c: Check) -> str:
    return "pass" if c.passed else "FAIL"


def _fmt_metrics(m: dict) -> str:
    if not m.get("finite", True):
        return "NON-FINITE output"
    text = f"corr {m['corr']:.7f}, max abs {m['max_abs']:.3g}, PSNR {m['psnr']:.2f} dB"
    if "residual_corr" in m:
        text += f", residual corr {m['residual_corr']:.6f}"
    return text


_LIMITED_BY = {"output": "largest value", "accumulator": "accumulator bound", "constant": "a constant"}


def _format_check(name: str, c: Check) -> list[str]:
    d = c.data
    label = f"{name:<13s} "
    pad = " " * 14
    if name == "ops":
        bad = [f"{op} x{v['count']} (rejected on phones: {v['reason']}; {v['source']})" for op, v in d["rejected"].items()]
        if not bad and not d["unproven"]:
            head = "every op phone-proven"
        else:
            parts = [f"{len(bad)} rejected on phones"] if bad else []
            parts += [f"{len(d['unproven'])} unproven on phones"] if d["unproven"] else []
            head = ", ".join(parts)
        out = [label + f"{head} -> {_verdict(c)}"]
        out += [pad + b for b in bad]
        if d["unproven"]:
            note = "allowed by --allow-unproven" if d["allow_unproven"] else "pass --allow-unproven to accept"
            out.append(pad + "unproven on phones: " + ", ".join(f"{k} x{v}" for k, v in d["unproven"].items()) + f" ({note})")
        return out
    if name == "forms":
        return _format_forms(label, pad, c)
    if name == "io":
        return [label + f"{d['contract']} -> {_verdict(c)}" + (f" ({c.error})" if c.error else "")]
    if name == "rank":
        extra = f" (above: {', '.join(f'{k} x{v}' for k, v in d['ops_above_limit'].items())})" if d["ops_above_limit"] else ""
        head = label + f"max tensor rank {d['max_rank']} (limit {d['limit']}){extra} -> {_verdict(c)}"
        return [head, *_rule_line(pad, d)]
    if name == "fp16_headroom":
        out = []
        for key in ("weights", "stress"):
            h = d.get(key)
            if h is None:
                continue
            w = h.get("worst") or {}
            f = h.get("worst_floor") or {}
            floor = f" smallest RSQRT/DIV input {f['floor']:.2g} ({f['floor_verdict']})" if f.get("floor") is not None else ""
            out.append(
                label + f"{'stressed twin' if key == 'stress' else 'weights':13s} headroom {w.get('headroom', float('inf')):.3g} "
                f"(op #{w.get('index', '-')} {w.get('op', '')}, {_LIMITED_BY.get(w.get('limited_by'), '')});{floor}; "
                f"overflows {h['overflow_count']}, underflows {h['underflow_count']}, non-finite {h['nonfinite_count']}"
                + (f"  [LayerNorm channel deviation {d['stress_peak']:.0f} at every level]" if key == "stress" else "")
            )
            label = pad
        if d.get("note"):
            out.append(label + d["note"])
        out[-1] += f" -> {_verdict(c)}"
        return out + _rule_line(pad, d)
    if c.error and not d.get("images"):
        return [label + f"{c.error} -> {_verdict(c)}"]
    out = []
    for img in d.get("images", []):
        acc = ""
        if "fully_accelerated" in d:
            acc = f"; fully accelerated: {'yes' if d['fully_accelerated'] else 'NO'}"
        truth = d.get("truth", "PyTorch")
        text = f"{img['image']}: vs {truth} {_fmt_metrics(img['vs_reference'])}"
        if "vs_cpu" in img and truth == "PyTorch":
            text += f"; vs CPU max abs {img['vs_cpu']['max_abs']:.3g}"
        if "int8_twin" in img:
            t = img["int8_twin"]
            text += f"; its int8 twin (PyTorch) PSNR {t['psnr']:.2f} dB, max abs {t['max_abs']:.3g}"
        out.append(label + text + acc)
        label = pad
    if name == "gpu_fp16":
        ex = d.get("fp16_exercised")
        out.append(label + f"fp16 exercised: {'yes' if ex else 'NO'} (max |fp16 - fp32 pass| {d.get('diff_vs_gpu_fp32', 0):.3g})")
        if c.error:
            out.append(label + c.error)
        if d.get("hint"):
            out.append(label + d["hint"])
    if out:
        out[-1] += f" -> {_verdict(c)}"
    return out + _rule_line(pad, d)


def _rule_line(pad: str, d: dict) -> list[str]:
    """The rule a failing check names (``data["rule"]``): its name, reason and source, on one line."""
    r = d.get("rule")
    return [pad + f"{r['name']}: {r['reason']} ({r['source']})"] if r else []


def _format_forms(label: str, pad: str, c: Check) -> list[str]:
    d = c.data
    reads = d.get("nearest_resizes", [])
    head = "no rejected form" if not d["rejected"] else f"{len(d['rejected'])} rejected form(s)"
    if reads:
        on = sum(r["on_grid"] for r in reads)
        head += f"; nearest resizes read on their stride grid: {on}/{len(reads)}"
    dyn = d.get("dynamic")
    if dyn:
        if dyn.get("error"):
            head += f"; off-grid perturbation: {dyn['error']}"
        else:
            head += (
                f"; off-grid perturbation of {dyn['resizes_perturbed']} resize(s): "
                + ("bit-identical" if dyn["identical"] else f"output CHANGED (max abs {dyn['max_abs']:.3g})")
            )
    out = [label + f"{head} -> {_verdict(c)}"]
    for rule, v in d["rejected"].items():
        nodes = ", ".join(str(n) for n in v["nodes"][:12]) + (" ..." if len(v["nodes"]) > 12 else "")
        out.append(pad + f"{rule} x{v['count']} at nodes {nodes}: {v['reason']} ({v['source']})")
    for form, v in d.get("unproven", {}).items():
        out.append(pad + f"unproven form (not failed): {v['form']} x{v['count']}: {v['note']}")
    return out


def _fmt_io(io: dict) -> str:
    def one(t: dict) -> str:
        return f"{t['name']} {t['shape']} {t['dtype'].lower()}"

    return " ; ".join(one(t) for t in io["inputs"]) + " -> " + " ; ".join(one(t) for t in io["outputs"])


# ------------------------------------------------------------------------------------------------ audit
def _image_rows(names, outs, refs, inputs, cpu_outs=None) -> list[dict]:
    rows = []
    for i, name in enumerate(names):
        row = {"image": name, "vs_reference": parity_metrics(outs[i], refs[i], inputs[i])}
        if cpu_outs is not None:
            row["vs_cpu"] = parity_metrics(outs[i], cpu_outs[i], inputs[i])
        rows.append(row)
    return rows


def io_check(model_path: str | Path) -> Check:
    """One float32 image in ([1,C,H,W] or [1,H,W,C], C = 1 or 3) and one float32 image of the same shape out."""
    text, error = io_contract(read_graph(model_path))
    return Check("io", error is None, {"contract": f"image to image: {text}"}, error)


def audit(
    model_path: str | Path,
    reference=None,
    images: list[str | Path] | None = None,
    gpu: bool = False,
    fp16: bool = False,
    threads: int = 2,
    allow_unproven: bool = False,
    stress: bool = True,
) -> AuditReport:
    """Audit ``model_path``: the static checks always; with ``reference`` (a Checkpoint) and ``images``, CPU
    parity; ``gpu``: the fp32 and fp16 GPU passes; ``fp16``: per-op fp16 headroom of the file (and, with
    ``stress``, of a stressed twin exported the same way). Every requested check runs even when another fails."""
    st = static_audit(model_path, allow_unproven)
    report = AuditReport(model=Path(model_path).name, static=st.summary())
    report.checks["ops"] = st.ops_check()
    report.checks["forms"] = st.forms_check()
    report.checks["rank"] = st.rank_check()
    report.checks["io"] = io_check(model_path)
    images = list(images or [])
    if (gpu or fp16) and not images:
        raise ValueError("the GPU and fp16 checks need at least one image")
    inputs = load_inputs(model_path, images) if images else []
    if report.checks["io"].passed:
        _forms_dynamic(report.checks["forms"], st.graph, inputs, threads)
    if not images:
        return report
    names = [Path(p).name for p in images]
    report.images = names
    precision = st.precision
    refs = reference_outputs(reference, inputs) if reference is not None else None
    cpu = _run_backend(model_path, inputs, "cpu", threads)
    report.first_outputs = {"input": inputs[0], "cpu": cpu.outputs[0]}
    if refs is not None:
        report.first_outputs["reference"] = refs[0]
        rows = _image_rows(names, cpu.outputs, refs, inputs)
        for r, sec in zip(rows, cpu.seconds):
            r["seconds"] = sec
        if precision == "int8":
            twins = reference_outputs(reference, inputs, int8=True)
            for r, t, ref, x in zip(rows, twins, refs, inputs):
                r["int8_twin"] = parity_metrics(t, ref, x)
        report.checks["parity_cpu"] = Check(
            "parity_cpu",
            all(parity_passes(r["vs_reference"], precision, r.get("int8_twin")) for r in rows),
            {"thresholds": PARITY_THRESHOLDS[precision], "weight_precision": precision, "images": rows},
        )
    if gpu:
        _gpu_checks(report, model_path, inputs, names, refs, cpu, precision, threads)
    if fp16:
        report.checks["fp16_headroom"] = _headroom_check(report, model_path, reference, inputs[0], stress)
    return report


def forms_dynamic(graph, inputs: list[np.ndarray], threads: int = 2) -> dict:
    """Run the file and its off-grid-perturbed rewrite (:func:`~nafnet_litert.litert.forms.perturb_nearest`) on the
    CPU, on ``inputs`` plus one seeded random input: are the outputs bit-identical?"""
    import tempfile

    from ..errors import ModelFileError
    from ..litert.forms import perturb_nearest
    from ..litert.runtime import infer_io, read_sidecar

    buf, n = perturb_nearest(graph.raw)
    if n == 0:
        return {"resizes_perturbed": 0, "identical": True, "max_abs": 0.0, "inputs": 0}
    sidecar = read_sidecar(graph.path)
    io = infer_io(graph.tensors[graph.inputs[0]].shape, sidecar)
    shape = (1, io.channels, io.height, io.width)
    xs = [np.random.default_rng(0).random(shape, dtype=np.float32), *inputs]
    with tempfile.TemporaryDirectory(prefix="nafnet-litert-forms-") as tmp:
        path = Path(tmp) / "perturbed.tflite"
        path.write_bytes(buf)
        if sidecar is not None:  # the same layout contract as the file
            import json

            path.with_suffix(".json").write_text(json.dumps(sidecar))
        try:
            a = _run_backend(graph.path, xs, "cpu", threads)
            b = _run_backend(path, xs, "cpu", threads)
        except ModelFileError as e:
            return {"resizes_perturbed": n, "identical": False, "max_abs": float("nan"), "error": str(e)}
    diff = max(float(np.max(np.abs(x - y))) for x, y in zip(a.outputs, b.outputs))
    same = all(np.array_equal(x, y) for x, y in zip(a.outputs, b.outputs))
    return {"resizes_perturbed": n, "identical": same, "max_abs": diff, "inputs": len(xs)}


def _forms_dynamic(check: Check, graph, inputs: list[np.ndarray], threads: int) -> None:
    dyn = forms_dynamic(graph, inputs, threads)
    check.data["dynamic"] = dyn
    if not dyn["identical"]:
        check.passed = False
        rule = check.data["rejected"].setdefault(
            "RESIZE_NEAREST_OFF_GRID",
            {"count": dyn["resizes_perturbed"], "nodes": [r["node"] for r in check.data["nearest_resizes"]]},
        )
        from ..litert.device_ops import FORM_REJECTIONS

        rule.update(reason=FORM_REJECTIONS["RESIZE_NEAREST_OFF_GRID"].reason,
                    source=FORM_REJECTIONS["RESIZE_NEAREST_OFF_GRID"].source)  # fmt: skip


def _gpu_checks(report, model_path, inputs, names, refs, cpu: Run, precision: str, threads: int) -> None:
    from ..litert.vulkan import ensure_vulkan_icd, fp16_install_hint

    setup = ensure_vulkan_icd()
    truth = refs if refs is not None else cpu.outputs
    runs = {p: _run_backend(model_path, inputs, "gpu", threads, p) for p in ("fp32", "fp16")}
    device = {"vulkan": setup.kind, "icd": setup.icd, "truth": "PyTorch" if refs is not None else "its CPU run"}
    # int8 weights: the quantization error is parity_cpu's business (against the int8 twin); both GPU passes judge
    # only the GPU's arithmetic, against the file's own CPU result (the same int8 weights); gpu_fp32 to fp32 parity
    against, judged = ("vs_cpu", "cpu") if precision == "int8" else ("vs_reference", "reference")
    if refs is None:  # no --reference: the GPU passes are judged against the file's own CPU result
        judged = "cpu"
    th = "fp32" if precision == "int8" else precision
    r32 = runs["fp32"]
    if r32.error:
        report.checks["gpu_fp32"] = Check("gpu_fp32", False, {"fully_accelerated": False, **device}, r32.error)
    else:
        rows = _image_rows(names, r32.outputs, truth, inputs, cpu.outputs)
        ok = r32.fully_accelerated and all(parity_passes(r[against], th) for r in rows)
        report.checks["gpu_fp32"] = Check(
            "gpu_fp32",
            bool(ok),
            {"fully_accelerated": r32.fully_accelerated, "thresholds": PARITY_THRESHOLDS[th], **device,
             "judged_against": judged, "images": rows},
        )  # fmt: skip
        report.first_outputs["gpu_fp32"] = r32.outputs[0]
    r16 = runs["fp16"]
    if r16.error:
        report.checks["gpu_fp16"] = Check("gpu_fp16", False, {"fully_accelerated": False, **device}, r16.error)
        return
    rows = _image_rows(names, r16.outputs, truth, inputs, cpu.outputs)
    if r32.error:
        diff, exercised = float("nan"), None
    else:
        diff = max(float(np.max(np.abs(a - b))) for a, b in zip(r16.outputs, r32.outputs))
        exercised = diff > 0
    data = {
        "fully_accelerated": r16.fully_accelerated,
        "fp16_exercised": exercised,
        "diff_vs_gpu_fp32": diff,
        "thresholds": GPU_FP16_THRESHOLDS,
        **device,
        "judged_against": judged,
        "images": rows,
    }
    error = None
    if exercised is False:
        data["hint"] = fp16_install_hint()
        error = "fp16 not exercised: the fp16 pass equals the fp32 pass (this Vulkan device has no shaderFloat16)"
    numbers_ok = all(gpu_fp16_passes(r[against]) for r in rows)
    ok = bool(r16.fully_accelerated) and bool(exercised) and numbers_ok
    if r16.fully_accelerated and exercised and not numbers_ok:  # resident, really fp16, wrong numbers
        data["rule"] = fp16_rule()
    report.checks["gpu_fp16"] = Check("gpu_fp16", ok, data, error)
    report.first_outputs["gpu_fp16"] = r16.outputs[0]


def _headroom_check(report, model_path, reference, x: np.ndarray, stress: bool) -> Check:
    from .headroom import measure_headroom

    real = measure_headroom(model_path, x)
    data: dict = {"weights": _headroom_summary(real), "stress": None}
    report.headroom["weights"] = real
    passed = real.passed
    if stress and reference is None:
        data["note"] = "stress twin not measured: it needs --reference (the checkpoint the file was exported from)"
    elif stress:
        import tempfile

        from .fp16 import stressed_export

        with tempfile.TemporaryDirectory(prefix="nafnet-litert-stress-") as tmp:
            twin = stressed_export(model_path, reference, tmp)
            if twin is None:
                data["note"] = "stress twin not measured: no nafnet-litert sidecar JSON says how the model was exported"
            else:
                path, bottleneck = twin
                sh = measure_headroom(path, x)
                data["stress"] = _headroom_summary(sh)
                data["stress_peak"] = bottleneck
                report.headroom["stress"] = sh
                passed = passed and sh.passed
    if any(h and h["overflow_count"] for h in (data["weights"], data["stress"])):
        data["rule"] = fp16_rule()
    return Check("fp16_headroom", passed, data)


def fp16_rule() -> dict:
    """The rule an fp16 failure names (:data:`~nafnet_litert.litert.device_ops.NUMERIC_REJECTIONS`)."""
    from ..litert.device_ops import NUMERIC_REJECTIONS

    r = NUMERIC_REJECTIONS[FP16_RULE]
    return {"name": FP16_RULE, "reason": r.reason, "source": r.source}


def _headroom_summary(h) -> dict:
    d = h.to_dict()
    return {
        "passed": h.passed,
        "overflow_count": h.overflow_count,
        "underflow_count": h.underflow_count,
        "subnormal_count": h.subnormal_count,
        "nonfinite_count": h.nonfinite_count,
        "worst": _row_brief(d.get("worst")),
        "worst_floor": _row_brief(d.get("worst_floor")),
        "tightest": [_row_brief(r) for r in d.get("tightest", [])],
    }


def _row_brief(r: dict | None) -> dict | None:
    if not r:
        return None
    keys = ("index", "op", "output", "max_abs", "bound", "headroom", "verdict", "limited_by", "floor", "floor_verdict")
    return {k: r.get(k) for k in keys}
