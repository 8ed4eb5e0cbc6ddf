"""fp16 headroom measured on the shipped .tflite itself: every op's output, accumulator and denominator.

Mobile GPUs store tensors in fp16 (largest finite value 65504) and accumulate reductions (convolution dot products,
MEAN, SUM, pooling windows) in fp16 too. :func:`measure_headroom` runs the exact file with LiteRT's reference
interpreter (builtin kernels, no delegate, every intermediate tensor preserved) on one fp32 input, and for every op
of the main subgraph reports:

* ``max_abs``: the largest |value| of its output tensor(s) in fp32, and whether any is NaN or inf;
* ``bound`` (accumulating ops only): an upper bound of the largest partial sum an fp16 accumulator could hold,
  whatever the summation order: ``sum |w| |x| + |b|`` for CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and
  BATCH_MATMUL (:mod:`.bounds`, in float64 on ``|x|`` and ``|W|``: ``torch.nn.functional.conv2d`` or a matrix
  product for CONV_2D, a sum of shifted strided slices for DEPTHWISE_CONV_2D, a matrix product for the others; stride, padding and
  dilation from the op's builtin options), and
  ``sum |x|`` over the reduced elements for MEAN, SUM (axes) and AVERAGE_POOL_2D (window) -- a GPU may compute a
  mean as a sum followed by one division;
* ``const_max``: the largest |value| of its constant float inputs (a GPU stores those in fp16 as well);
* ``headroom = 65504 / max(bound, max_abs, const_max)`` (inf when that is 0), verdict ``overflow`` (< 1),
  ``tight`` (< 4) or ``ok``;
* ``floor`` (RSQRT, SQRT, DIV): the smallest |denominator| (RSQRT's and SQRT's input, DIV's second input), with
  verdict ``underflow`` (< 2^-24 = 5.96e-8, fp16's smallest subnormal: it may round to 0 and the op's output
  becomes inf, then NaN downstream), ``subnormal`` (< 2^-14 = 6.1e-5, fp16's smallest normal: precision lost) or
  ``ok``. SQRT of 0 is 0, not inf: its floor is an ``underflow`` only when its output is a DIV denominator or an
  RSQRT input (the division by zero happens there), ``subnormal`` otherwise.

Only the main subgraph (subgraph 0) is measured. Memory: the interpreter keeps every intermediate tensor (fp32),
~2.8 GB for GoPro-w32 at 256 x 256; the bounds are computed one op at a time.

Weights come from the interpreter (with fp16-weight models they are the outputs of the DEQUANTIZE ops, which the
preserved-tensor interpreter keeps); each is checked against the constant buffer in the file (float16 -> float32)
and the buffer is used instead when they disagree or the tensor cannot be read (``weights = "constant"``).

(Over 400 lines because of this docstring, the method's one written description; the bounds live in :mod:`.bounds`
and the text output in :mod:`.text`.)
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelFileError
from ..litert.graph import Graph, OpInfo, read_graph
from .bounds import (
    batch_matmul_bound, conv_bound, magnitude_stats, matmul_bound, min_abs, pool_bound, reduce_bound,
)  # fmt: skip
from .text import format_headroom_table

FP16_MAX = 65504.0
FP16_MIN_SUBNORMAL = 2.0**-24  # 5.96e-8
FP16_MIN_NORMAL = 2.0**-14  # 6.10e-5
TIGHT_BELOW = 4.0

#: Ops whose accumulator gets a bound.
ACCUMULATING_OPS = (
    "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL", "MEAN", "SUM", "AVERAGE_POOL_2D",
)  # fmt: skip
#: Ops with a denominator, and which input it is.
DENOMINATOR_INPUT = {"RSQRT": 0, "SQRT": 0, "DIV": 1}

_FLOAT_TYPES = ("FLOAT32", "FLOAT16", "FLOAT64")


def overflow_verdict(headroom: float) -> str:
    return "overflow" if headroom < 1 else "tight" if headroom < TIGHT_BELOW else "ok"


def floor_verdict(floor: float, becomes_inf: bool) -> str:
    if floor < FP16_MIN_SUBNORMAL:
        return "underflow" if becomes_inf else "subnormal"
    return "subnormal" if floor < FP16_MIN_NORMAL else "ok"


@dataclass
class HeadroomRow:
    """One op of the main subgraph (see the module docstring for the quantities)."""

    index: int
    op: str
    output: str  # name of the output tensor with the largest |value| (the first one if all are equal)
    shape: tuple[int, ...]
    max_abs: float  # over non-NaN values; inf if any output value is inf
    nan: bool
    inf: bool
    bound: float | None = None
    const_max: float | None = None
    headroom: float = math.inf
    verdict: str = "ok"
    limited_by: str = "output"  # "output", "accumulator" or "constant"
    floor: float | None = None
    floor_verdict: str | None = None
    weights: str | None = None  # where a weighted op's filter/bias came from: "interpreter" or "constant"

    @property
    def finite(self) -> bool:
        return not (self.nan or self.inf)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["finite"] = self.finite
        return d


@dataclass
class HeadroomReport:
    model: str
    rows: list[HeadroomRow]
    seconds: float = 0.0
    input_layout: str = "NCHW"
    notes: list[str] = field(default_factory=list)

    @property
    def worst(self) -> HeadroomRow | None:
        """The row with the least overflow headroom (ties: the first)."""
        return min(self.rows, key=lambda r: r.headroom, default=None)

    def tightest(self, n: int = 10) -> list[HeadroomRow]:
        """The ``n`` rows with the least overflow headroom, least first."""
        return sorted(self.rows, key=lambda r: r.headroom)[:n]

    @property
    def worst_floor(self) -> HeadroomRow | None:
        floors = [(r.floor, r) for r in self.rows if r.floor is not None]
        least = min(floors, key=lambda fr: fr[0], default=None)  # ties: the first
        return least[1] if least is not None else None

    @property
    def overflow_count(self) -> int:
        return sum(r.verdict == "overflow" for r in self.rows)

    @property
    def tight_count(self) -> int:
        return sum(r.verdict == "tight" for r in self.rows)

    @property
    def underflow_count(self) -> int:
        return sum(r.floor_verdict == "underflow" for r in self.rows)

    @property
    def subnormal_count(self) -> int:
        return sum(r.floor_verdict == "subnormal" for r in self.rows)

    @property
    def nonfinite_count(self) -> int:
        return sum(not r.finite for r in self.rows)

    @property
    def passed(self) -> bool:
        return self.overflow_count == 0 and self.underflow_count == 0 and self.nonfinite_count == 0

    def to_dict(self) -> dict:
        worst, worst_floor = self.worst, self.worst_floor
        return {
            "model": self.model,
            "input_layout": self.input_layout,
            "op_count": len(self.rows),
            "passed": self.passed,
            "overflow_count": self.overflow_count,
            "tight_count": self.tight_count,
            "underflow_count": self.underflow_count,
            "subnormal_count": self.subnormal_count,
            "nonfinite_count": self.nonfinite_count,
            "worst": worst.to_dict() if worst else None,
            "worst_floor": worst_floor.to_dict() if worst_floor else None,
            "tightest": [r.to_dict() for r in self.tightest(10)],
            "seconds": round(self.seconds, 3),
            "notes": list(self.notes),
            "rows": [r.to_dict() for r in self.rows],
        }

    def format_table(self, top: int = 20) -> str:
        """The ``top`` rows with the least headroom, then every floor that is not ``ok``, as aligned text."""
        return format_headroom_table(self, top)

    def summary(self) -> dict:
        """What the audit's ``fp16_headroom`` check keeps: the counts and the worst rows in brief."""
        d = self.to_dict()
        return {
            "passed": self.passed,
            "overflow_count": self.overflow_count,
            "underflow_count": self.underflow_count,
            "subnormal_count": self.subnormal_count,
            "nonfinite_count": self.nonfinite_count,
            "worst": _row_brief(d.get("worst")),
            "worst_floor": _row_brief(d.get("worst_floor")),
            "tightest": [_row_brief(r) for r in d.get("tightest", [])],
        }


def _row_brief(r: dict | None) -> dict | None:
    if not r:
        return None
    keys = ("index", "op", "output", "max_abs", "bound", "headroom", "verdict", "limited_by", "floor", "floor_verdict")
    return {k: r.get(k) for k in keys}


# ---------------------------------------------------------------------------------------------------------------
# The measurement.


def measure_headroom(model_path: str | Path, x_nchw: np.ndarray, threads: int = 2) -> HeadroomReport:
    """Run ``model_path`` once on ``x_nchw`` (float32 ``[1,C,H,W]``, transposed here for NHWC models) with every
    intermediate tensor preserved and report every op's fp16 headroom (see the module docstring)."""
    t0 = time.perf_counter()
    model_path = Path(model_path)
    graph = read_graph(model_path)
    x, layout = _model_input(model_path, graph, x_nchw)
    tensors = _Tensors(graph, _run_preserving_tensors(model_path, graph, x, threads))
    notes: list[str] = []
    rows = [_measure_op(k, op, tensors, notes) for k, op in enumerate(graph.ops)]
    return HeadroomReport(
        model=model_path.name, rows=rows, seconds=time.perf_counter() - t0, input_layout=layout, notes=notes
    )


def _model_input(model_path: Path, graph: Graph, x_nchw: np.ndarray) -> tuple[np.ndarray, str]:
    """``x_nchw`` checked against the model's input and in its layout: (input, layout)."""
    from ..litert.runtime import infer_io
    from ..litert.sidecar import read_sidecar

    io = infer_io(graph.tensors[graph.inputs[0]].shape, read_sidecar(model_path))
    x = np.asarray(x_nchw, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    expected = (1, io.channels, io.height, io.width)
    if x.shape != expected:
        raise ValueError(f"input must be {list(expected)} (NCHW), got {list(x.shape)}")
    if io.layout == "NHWC":
        x = x.transpose(0, 2, 3, 1)
    return x, io.layout


def _run_preserving_tensors(model_path: Path, graph: Graph, x: np.ndarray, threads: int):
    """The reference interpreter (builtin kernels, no delegate) invoked once on ``x``, every tensor kept."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        interp = Interpreter(
            model_path=str(model_path),
            experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            num_threads=int(threads),
        )
        interp.allocate_tensors()
    except (RuntimeError, ValueError) as e:
        raise ModelFileError(f"{model_path.name}: the LiteRT interpreter refused it ({e})") from None
    details = {d["index"]: d for d in interp.get_tensor_details()}
    for i, t in enumerate(graph.tensors):  # the interpreter appends its own scratch tensors after the file's
        d = details.get(i)
        if d is None or d["name"] != t.name or (t.shape and tuple(int(s) for s in d["shape"]) != tuple(t.shape)):
            got = None if d is None else (d["name"], list(d["shape"]))
            raise ModelFileError(
                f"{model_path.name}: interpreter tensor {i} is {got}, the file says {(t.name, list(t.shape))}"
            )
    interp.set_tensor(graph.inputs[0], np.ascontiguousarray(x))
    interp.invoke()
    return interp


class _Tensors:
    """The values of one preserved-tensor run, with the file's constants to check the weights against."""

    def __init__(self, graph: Graph, interp) -> None:
        self.graph = graph
        self.interp = interp
        self.producer = {o: k for k, op in enumerate(graph.ops) for o in op.outputs if o >= 0}
        self.consumers: dict[int, list[tuple[int, int]]] = {}  # tensor -> [(op index, input position)]
        for k, op in enumerate(graph.ops):
            for pos, i in enumerate(op.inputs):
                self.consumers.setdefault(i, []).append((k, pos))
        self._consts: dict[int, np.ndarray | None] = {}

    def get(self, i: int) -> np.ndarray | None:
        """The interpreter's value of tensor ``i``, or None when it cannot be read."""
        try:
            return self.interp.get_tensor(i)
        except (ValueError, RuntimeError):
            return None

    def const(self, i: int) -> np.ndarray | None:
        """The tensor's constant data, following a DEQUANTIZE back to its float16 constant."""
        if i not in self._consts:
            src = i
            p = self.producer.get(i)
            if p is not None and self.graph.ops[p].name == "DEQUANTIZE":
                src = self.graph.ops[p].inputs[0]
            v = self.graph.const_value(src)  # the package's one constant reader
            self._consts[i] = v.astype(np.float32) if v is not None and v.dtype == np.float16 else v
        return self._consts[i]

    def value(self, i: int) -> np.ndarray | None:
        """The interpreter's value, else the file's constant."""
        v = self.get(i)
        return self.const(i) if v is None else v

    def weight(self, i: int) -> tuple[np.ndarray | None, str | None]:
        """A filter or bias and where it came from: the interpreter's value, checked against the file's constant."""
        if i < 0:
            return None, None
        live, const = self.get(i), self.const(i)
        if const is None:
            return live, ("interpreter" if live is not None else None)
        if live is not None and live.shape == const.shape and np.array_equal(live.astype(np.float32), const):
            return live, "interpreter"
        return const, "constant"


def _measure_op(k: int, op: OpInfo, t: _Tensors, notes: list[str]) -> HeadroomRow:
    graph = t.graph
    outs = [o for o in op.outputs if o >= 0]
    out_vals = [v for v in (t.get(o) for o in outs) if v is not None]
    max_abs, nan, inf, arg = magnitude_stats(out_vals)
    out_t = outs[arg] if outs else -1
    row = HeadroomRow(
        index=k,
        op=op.name,
        output=graph.tensors[out_t].name if out_t >= 0 else "",
        shape=tuple(graph.tensors[out_t].shape) if out_t >= 0 else (),
        max_abs=max_abs,
        nan=nan,
        inf=inf,
    )
    row.const_max = _const_max(op, t)
    try:
        row.bound, row.weights = _bound(op, k, t)
    except (ValueError, RuntimeError) as e:
        notes.append(f"op {k} {op.name}: no accumulator bound ({e})")
    if row.bound is not None and math.isnan(row.bound):  # NaN inputs everywhere: reported as non-finite
        row.bound = None
    _set_floor(row, op, outs, t)
    peak = {"output": max_abs, "accumulator": row.bound or 0.0, "constant": row.const_max or 0.0}
    row.limited_by = max(peak, key=lambda q: peak[q])
    top = peak[row.limited_by]
    row.headroom = math.inf if top == 0 else (0.0 if math.isinf(top) else FP16_MAX / top)
    row.verdict = overflow_verdict(row.headroom)
    return row


def _const_max(op: OpInfo, t: _Tensors) -> float | None:
    """The largest |value| of the op's constant float inputs (the GPU stores them in fp16 too)."""
    cmax = None
    for i in op.inputs:
        c = t.const(i) if i >= 0 and t.graph.tensors[i].dtype in _FLOAT_TYPES else None
        if c is not None and c.size:
            m = float(np.max(np.abs(c)))
            cmax = m if cmax is None else max(cmax, m)
    return cmax


def _set_floor(row: HeadroomRow, op: OpInfo, outs: list[int], t: _Tensors) -> None:
    """``row.floor`` and ``row.floor_verdict`` of an op with a denominator (RSQRT, SQRT, DIV)."""
    if op.name not in DENOMINATOR_INPUT or len(op.inputs) <= DENOMINATOR_INPUT[op.name]:
        return
    v = t.value(op.inputs[DENOMINATOR_INPUT[op.name]])
    if v is None or v.dtype.kind != "f":
        return
    floor = min_abs(v)
    row.floor = None if math.isnan(floor) else floor  # all NaN: reported as non-finite instead
    ops = t.graph.ops
    becomes_inf = op.name != "SQRT" or any(
        ops[c].name == "RSQRT" or (ops[c].name == "DIV" and pos == 1) for o in outs for c, pos in t.consumers.get(o, [])
    )
    row.floor_verdict = None if row.floor is None else floor_verdict(row.floor, becomes_inf)


def _bound(op: OpInfo, k: int, t: _Tensors) -> tuple[float | None, str | None]:
    """The accumulator bound of op ``k`` and where its weights came from, or (None, None)."""
    name = op.name
    if name not in ACCUMULATING_OPS:
        return None, None
    x = t.get(op.inputs[0])
    if x is None or x.dtype.kind != "f":
        raise ValueError("input not readable as float")
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        return _weighted_bound(op, k, t, x)
    if name == "BATCH_MATMUL":
        y, src = t.weight(op.inputs[1])
        if y is None:
            raise ValueError("second operand not readable")
        opts = t.graph.builtin_options(k, "BatchMatMulOptions")
        adj_x, adj_y = (bool(opts.AdjX()), bool(opts.AdjY())) if opts is not None else (False, False)
        return batch_matmul_bound(x, y, adj_x, adj_y), src
    if name in ("MEAN", "SUM"):
        axes = t.value(op.inputs[1])
        if axes is None:
            raise ValueError("reduction axes not readable")
        return reduce_bound(x, axes), None
    # AVERAGE_POOL_2D
    opts = t.graph.builtin_options(k, "Pool2DOptions")
    if opts is None:
        raise ValueError("no Pool2DOptions")
    filt = (opts.FilterHeight(), opts.FilterWidth())
    stride = (opts.StrideH() or 1, opts.StrideW() or 1)
    return pool_bound(x, filt, stride, _padding(opts)), None


def _weighted_bound(op: OpInfo, k: int, t: _Tensors, x: np.ndarray) -> tuple[float, str | None]:
    """CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED: the bound, and "constant" when a weight came from the file."""
    filt, src = t.weight(op.inputs[1])
    bias, bsrc = t.weight(op.inputs[2]) if len(op.inputs) > 2 else (None, None)
    src = "constant" if "constant" in (src, bsrc) else src
    if op.name == "FULLY_CONNECTED":
        if filt is None:
            raise ValueError("weights not readable")
        return matmul_bound(x, filt, bias), src
    if filt is None:
        raise ValueError("filter not readable")
    depthwise = op.name == "DEPTHWISE_CONV_2D"
    opts = t.graph.builtin_options(k, "DepthwiseConv2DOptions" if depthwise else "Conv2DOptions")
    stride = (opts.StrideH() or 1, opts.StrideW() or 1) if opts else (1, 1)
    dilation = (opts.DilationHFactor() or 1, opts.DilationWFactor() or 1) if opts else (1, 1)
    padding = _padding(opts) if opts is not None else "SAME"
    return conv_bound(x, filt, bias, stride, dilation, padding, depthwise), src


def _padding(opts) -> str:
    from ai_edge_litert import schema_py_generated as schema

    return "VALID" if opts.Padding() == schema.Padding.VALID else "SAME"


__all__ = [
    "ACCUMULATING_OPS", "FP16_MAX", "FP16_MIN_NORMAL", "FP16_MIN_SUBNORMAL", "HeadroomReport", "HeadroomRow",
    "measure_headroom",
]  # fmt: skip
