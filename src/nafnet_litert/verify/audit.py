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
  reference: see :data:`.parity.GPU_FP16_THRESHOLDS` for the numbers and why.
* ``fp16_headroom``: per-op fp16 headroom of the file's own tensors (:mod:`.headroom`), with the
  checkpoint's weights and with a stressed twin exported the same way.

Without a reference the GPU passes are judged against the file's own CPU output. When ``gpu_fp16`` is resident and
really fp16 but wrong, or an op overflows fp16 in ``fp16_headroom``, the check names the rule
``FP16_REDUCTION_OVERFLOW`` (:data:`~nafnet_litert.litert.device_ops.NUMERIC_REJECTIONS`) with its source.

The thresholds live in :mod:`.parity`, the text of the report in :mod:`.text`; the CLI holds no pass/fail policy
of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..jsonsafe import dumps
from ..litert.graph import read_graph
from ..litert.static_audit import Check, io_contract, static_audit
from .parity import (
    GPU_FP16_THRESHOLDS,
    PARITY_THRESHOLDS,
    Run,
    gpu_fp16_passes,
    load_inputs,
    parity_metrics,
    parity_passes,
    reference_outputs,
    run_backend,
)
from .text import format_audit

#: The rule named when the fp16 GPU pass is resident and really fp16 but wrong, or an op overflows fp16's range.
FP16_RULE = "FP16_REDUCTION_OVERFLOW"


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
        return format_audit(self)


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
    cpu = run_backend(model_path, inputs, "cpu", threads)
    report.first_outputs = {"input": inputs[0], "cpu": cpu.outputs[0]}
    if refs is not None:
        report.first_outputs["reference"] = refs[0]
        report.checks["parity_cpu"] = _parity_cpu_check(reference, inputs, names, refs, cpu, precision)
    if gpu:
        _gpu_checks(report, model_path, inputs, names, refs, cpu, precision, threads)
    if fp16:
        report.checks["fp16_headroom"] = _headroom_check(report, model_path, reference, inputs[0], stress)
    return report


def _parity_cpu_check(reference, inputs, names, refs, cpu: Run, precision: str) -> Check:
    """LiteRT CPU against the PyTorch reference (int8: against the reference's int8 twin's distance from it)."""
    rows = _image_rows(names, cpu.outputs, refs, inputs)
    for r, sec in zip(rows, cpu.seconds):
        r["seconds"] = sec
    if precision == "int8":
        twins = reference_outputs(reference, inputs, int8=True)
        for r, t, ref, x in zip(rows, twins, refs, inputs):
            r["int8_twin"] = parity_metrics(t, ref, x)
    return Check(
        "parity_cpu",
        all(parity_passes(r["vs_reference"], precision, r.get("int8_twin")) for r in rows),
        {"thresholds": PARITY_THRESHOLDS[precision], "weight_precision": precision, "images": rows},
    )


def forms_dynamic(graph, inputs: list[np.ndarray], threads: int = 2) -> dict:
    """Run the file and its off-grid-perturbed rewrite (:func:`~nafnet_litert.litert.forms.perturb_nearest`) on the
    CPU, on ``inputs`` plus one seeded random input: are the outputs bit-identical?"""
    import tempfile

    from ..errors import ModelFileError
    from ..litert.forms import perturb_nearest
    from ..litert.runtime import infer_io
    from ..litert.sidecar import read_sidecar

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
            sidecar.write(path)
        try:
            a = run_backend(graph.path, xs, "cpu", threads)
            b = run_backend(path, xs, "cpu", threads)
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
    """gpu_fp32 and gpu_fp16: the GPU accelerator alone, at each precision, on every image."""
    from ..litert.vulkan import ensure_vulkan_icd

    setup = ensure_vulkan_icd()
    runs = {p: run_backend(model_path, inputs, "gpu", threads, p) for p in ("fp32", "fp16")}
    # int8 weights: the quantization error is parity_cpu's business (against the int8 twin); both GPU passes judge
    # only the GPU's arithmetic, against the file's own CPU result (the same int8 weights); gpu_fp32 to fp32 parity
    against, judged = ("vs_cpu", "cpu") if precision == "int8" else ("vs_reference", "reference")
    if refs is None:  # no --reference: the GPU passes are judged against the file's own CPU result
        judged = "cpu"
    ctx = _GpuContext(
        names=names,
        inputs=inputs,
        truth=refs if refs is not None else cpu.outputs,
        cpu=cpu,
        against=against,
        device={"vulkan": setup.kind, "icd": setup.icd, "truth": "PyTorch" if refs is not None else "its CPU run"},
        judged=judged,
    )
    _gpu_fp32_check(report, ctx, runs["fp32"], "fp32" if precision == "int8" else precision)
    _gpu_fp16_check(report, ctx, runs["fp16"], runs["fp32"])


@dataclass
class _GpuContext:
    """What both GPU checks judge their runs against."""

    names: list[str]
    inputs: list[np.ndarray]
    truth: list[np.ndarray]  # the reference's outputs, or the file's CPU outputs without a reference
    cpu: Run
    against: str  # the image row's metrics that decide: "vs_reference" or "vs_cpu"
    device: dict
    judged: str  # "reference" or "cpu"

    def rows(self, run: Run) -> list[dict]:
        return _image_rows(self.names, run.outputs, self.truth, self.inputs, self.cpu.outputs)


def _gpu_fp32_check(report, ctx: _GpuContext, r32: Run, th: str) -> None:
    if r32.error:
        report.checks["gpu_fp32"] = Check("gpu_fp32", False, {"fully_accelerated": False, **ctx.device}, r32.error)
        return
    rows = ctx.rows(r32)
    ok = r32.fully_accelerated and all(parity_passes(r[ctx.against], th) for r in rows)
    report.checks["gpu_fp32"] = Check(
        "gpu_fp32",
        bool(ok),
        {"fully_accelerated": r32.fully_accelerated, "thresholds": PARITY_THRESHOLDS[th], **ctx.device,
         "judged_against": ctx.judged, "images": rows},
    )  # fmt: skip
    report.first_outputs["gpu_fp32"] = r32.outputs[0]


def _gpu_fp16_check(report, ctx: _GpuContext, r16: Run, r32: Run) -> None:
    from ..litert.vulkan import fp16_install_hint

    if r16.error:
        report.checks["gpu_fp16"] = Check("gpu_fp16", False, {"fully_accelerated": False, **ctx.device}, r16.error)
        return
    rows = ctx.rows(r16)
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
        **ctx.device,
        "judged_against": ctx.judged,
        "images": rows,
    }
    error = None
    if exercised is False:
        data["hint"] = fp16_install_hint()
        error = "fp16 not exercised: the fp16 pass equals the fp32 pass (this Vulkan device has no shaderFloat16)"
    numbers_ok = all(gpu_fp16_passes(r[ctx.against]) for r in rows)
    ok = bool(r16.fully_accelerated) and bool(exercised) and numbers_ok
    if r16.fully_accelerated and exercised and not numbers_ok:  # resident, really fp16, wrong numbers
        data["rule"] = fp16_rule()
    report.checks["gpu_fp16"] = Check("gpu_fp16", ok, data, error)
    report.first_outputs["gpu_fp16"] = r16.outputs[0]


def _headroom_check(report, model_path, reference, x: np.ndarray, stress: bool) -> Check:
    from .headroom import measure_headroom

    real = measure_headroom(model_path, x)
    data: dict = {"weights": real.summary(), "stress": None}
    report.headroom["weights"] = real
    passed = real.passed
    if stress and reference is None:
        data["note"] = "stress twin not measured: it needs --reference (the checkpoint the file was exported from)"
    elif stress:
        import tempfile

        from .stressed_export import stressed_export

        with tempfile.TemporaryDirectory(prefix="nafnet-litert-stress-") as tmp:
            twin = stressed_export(model_path, reference, tmp)
            if twin is None:
                data["note"] = "stress twin not measured: no nafnet-litert sidecar JSON says how the model was exported"
            else:
                path, bottleneck = twin
                sh = measure_headroom(path, x)
                data["stress"] = sh.summary()
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


__all__ = ["FP16_RULE", "AuditReport", "audit", "forms_dynamic", "fp16_rule", "io_check"]
