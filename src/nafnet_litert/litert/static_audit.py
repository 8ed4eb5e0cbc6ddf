"""The static audit: what a .tflite file's graph alone proves (ops against the phone tables, forms, tensor ranks).

Pure flatbuffer reading, no interpreter and no PyTorch: :func:`nafnet_litert.litert.convert.export` records this summary
in every sidecar, and :func:`nafnet_litert.verify.audit.audit` reports its checks first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import device_ops
from .forms import OFF_GRID, nearest_reads, rejected_forms, unproven_forms
from .graph import Graph, read_graph

MAX_GPU_RANK = 4
RANK_RULE = "RANK_ABOVE_4"


# ------------------------------------------------------------------------------------------------ checks
@dataclass
class Check:
    """One audit check: passed or not, its numbers, and an error line when it could not run."""

    name: str
    passed: bool
    data: dict = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict:
        d = {"passed": bool(self.passed), **self.data}
        if self.error:
            d["error"] = self.error
        return d


# ------------------------------------------------------------------------------------------------ static
@dataclass
class StaticAudit:
    graph: Graph
    allow_unproven: bool = False
    _forms: dict[str, list[int]] | None = field(default=None, repr=False)
    _reads: list | None = field(default=None, repr=False)

    @property
    def histogram(self) -> dict[str, int]:
        return self.graph.op_histogram()

    @property
    def rejected(self) -> dict[str, int]:
        return {op: n for op, n in self.histogram.items() if device_ops.classify(op) == "rejected"}

    @property
    def unproven(self) -> dict[str, int]:
        return {op: n for op, n in self.histogram.items() if device_ops.classify(op) == "unproven"}

    def nearest_reads(self) -> list:
        """Every nearest resize and how it is read (:func:`.forms.nearest_reads`), computed once."""
        if self._reads is None:
            self._reads = nearest_reads(self.graph)
        return self._reads

    def form_nodes(self) -> dict[str, list[int]]:
        """Rejected forms of otherwise proven ops: {form: node indices} (:func:`.forms.rejected_forms`)."""
        if self._forms is None:
            self._forms = rejected_forms(self.graph, self.nearest_reads())
        return self._forms

    def form_violations(self) -> dict[str, int]:
        """Rejected forms: {form: count} (for the off-grid resize: how many resizes are read off the grid)."""
        reads = sum(1 for r in self.nearest_reads() if not r.on_grid) if OFF_GRID in self.form_nodes() else 0
        return {f: (reads if f == OFF_GRID else len(n)) for f, n in self.form_nodes().items()}

    def unproven_form_nodes(self) -> dict[str, list[int]]:
        return unproven_forms(self.graph)

    @property
    def ops_above_4d(self) -> dict[str, int]:
        return self.graph.ops_above_rank(MAX_GPU_RANK)

    @property
    def precision(self) -> str:
        dtypes = {t.dtype for t in self.graph.tensors}
        if "INT8" in dtypes and "DEQUANTIZE" in self.histogram:
            return "int8"  # int8 weights (depthwise filters may be fp16: see litert.convert.INT8_RECIPE)
        return "fp16" if "FLOAT16" in dtypes else "fp32"

    def ops_check(self) -> Check:
        rejected = {
            op: {"count": n, "reason": device_ops.REJECTED[op].reason, "source": device_ops.REJECTED[op].source}
            for op, n in self.rejected.items()
        }
        unproven = self.unproven
        hist = self.histogram
        passed = not rejected and (self.allow_unproven or not unproven)
        return Check(
            "ops",
            passed,
            {
                "node_count": self.graph.node_count,
                "node_count_without_dequantize": self.graph.node_count - hist.get("DEQUANTIZE", 0),
                "transpose_count": hist.get("TRANSPOSE", 0),
                "rejected": rejected,
                "unproven": unproven,
                "allow_unproven": self.allow_unproven,
                "histogram": hist,
            },
        )

    def forms_check(self) -> Check:
        """The static half of the ``forms`` check: no rejected form (node indices per rule), every nearest resize
        read on its grid; unproven forms are listed (with why we use them), not failed. The audit adds the dynamic
        half (:func:`nafnet_litert.verify.audit.forms_dynamic`)."""
        rules = {
            f: {
                "count": n,
                "nodes": self.form_nodes()[f],
                "reason": device_ops.FORM_REJECTIONS[f].reason,
                "source": device_ops.FORM_REJECTIONS[f].source,
            }
            for f, n in self.form_violations().items()
        }
        reads = [
            {"node": r.node, "stride": list(r.stride) if r.stride else None, "on_grid": r.on_grid,
             "offending_nodes": r.offending, "why": r.reason}
            for r in self.nearest_reads()
        ]  # fmt: skip
        unproven = {
            f: {"count": len(nodes), "nodes": nodes, "form": device_ops.FORMS[f].ops, "note": device_ops.FORMS[f].note}
            for f, nodes in self.unproven_form_nodes().items()
        }
        return Check("forms", not rules, {"rejected": rules, "nearest_resizes": reads, "unproven": unproven})

    def rank_check(self) -> Check:
        """No tensor above rank 4; a failure names the rule (``RANK_ABOVE_4``) with its reason and source."""
        data = {"max_rank": self.graph.max_rank(), "limit": MAX_GPU_RANK, "ops_above_limit": self.ops_above_4d}
        if self.ops_above_4d:
            rule = device_ops.FORM_REJECTIONS[RANK_RULE]
            data["rule"] = {"name": RANK_RULE, "reason": rule.reason, "source": rule.source}
        return Check("rank", not self.ops_above_4d, data)

    @property
    def gpu_clean(self) -> bool:
        """Every op phone-proven (or allowed unproven), no rejected form, nothing above rank 4."""
        return self.ops_check().passed and self.forms_check().passed and self.rank_check().passed

    def summary(self) -> dict:
        g = self.graph
        ops = self.ops_check().data
        return {
            "gpu_clean": self.gpu_clean,
            "node_count": g.node_count,
            "node_count_without_dequantize": ops["node_count_without_dequantize"],
            "transpose_count": ops["transpose_count"],
            "rejected_ops": {op: d["count"] for op, d in ops["rejected"].items()},
            "rejected_forms": self.form_violations(),
            "unproven_forms": {f: len(n) for f, n in self.unproven_form_nodes().items()},
            "unproven_ops": ops["unproven"],
            "max_rank": g.max_rank(),
            "ops_above_4d": self.ops_above_4d,
            "weight_precision": self.precision,
            "file_size": g.file_size,
            "io": g.io(),
            "signatures": g.signatures,
            "op_histogram": ops["histogram"],
        }


def io_contract(g: Graph) -> tuple[str, str | None]:
    """The image-to-image contract of a graph: one float32 input ``[1,C,H,W]`` or ``[1,H,W,C]`` (C = 1 or 3) and one
    float32 output of the same shape. Returns (the signature as text, what is wrong or None)."""
    ins = [g.tensors[i] for i in g.inputs]
    outs = [g.tensors[i] for i in g.outputs]
    text = ", ".join(f"{t.dtype}{list(t.shape)}" for t in ins) + " -> " + ", ".join(
        f"{t.dtype}{list(t.shape)}" for t in outs
    )
    if len(ins) != 1 or len(outs) != 1:
        return text, f"{len(ins)} input(s) and {len(outs)} output(s), expected one image each"
    i, o = ins[0], outs[0]
    shape = list(i.shape)
    if not (len(shape) == 4 and shape[0] == 1 and (shape[1] in (1, 3) or shape[3] in (1, 3))):
        return text, f"input {shape} is not a [1,C,H,W] or [1,H,W,C] image (C = 1 or 3)"
    if list(o.shape) != shape:
        return text, f"output {list(o.shape)} differs from the input {shape}: not image to image"
    if i.dtype.lower() != "float32" or o.dtype.lower() != "float32":
        return text, f"{i.dtype} -> {o.dtype}, expected float32 in and out"
    return text, None


def static_audit(model: str | Path | bytes, allow_unproven: bool = False) -> StaticAudit:
    return StaticAudit(read_graph(model), allow_unproven)


__all__ = ["MAX_GPU_RANK", "RANK_RULE", "Check", "StaticAudit", "io_contract", "static_audit"]
