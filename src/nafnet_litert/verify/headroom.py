"""fp16 headroom measured on the shipped .tflite itself: every op's output, accumulator and denominator.

Mobile GPUs store tensors in fp16 (largest finite value 65504) and accumulate reductions (convolution dot products,
MEAN, SUM, pooling windows) in fp16 too. :func:`measure_headroom` runs the exact file with LiteRT's reference
interpreter (builtin kernels, no delegate, every intermediate tensor preserved) on one fp32 input, and for every op
of the main subgraph reports:

* ``max_abs``: the largest |value| of its output tensor(s) in fp32, and whether any is NaN or inf;
* ``bound`` (accumulating ops only): an upper bound of the largest partial sum an fp16 accumulator could hold,
  whatever the summation order: ``sum |w| |x| + |b|`` for CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and
  BATCH_MATMUL (in float64 on ``|x|`` and ``|W|``: ``torch.nn.functional.conv2d`` or a matrix product for CONV_2D,
  a sum of shifted strided slices for DEPTHWISE_CONV_2D, a matrix product for the others; stride, padding and
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
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelFileError

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

_FLOAT_TYPES = {"FLOAT32": "<f4", "FLOAT16": "<f2", "FLOAT64": "<f8"}


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
        floors = [r for r in self.rows if r.floor is not None]
        return min(floors, key=lambda r: r.floor, default=None)

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
        lines = [
            f"{self.model}: {len(self.rows)} ops, {self.overflow_count} overflow, {self.tight_count} tight, "
            f"{self.underflow_count} underflow, {self.subnormal_count} subnormal, {self.nonfinite_count} non-finite"
            f" -> {'PASS' if self.passed else 'FAIL'} ({self.seconds:.1f} s)"
        ]
        head = f"{'#':>5}  {'op':<18} {'max|out|':>10} {'bound':>10} {'headroom':>9}  {'verdict':<8} {'by':<11} output"
        lines += ["", head]
        for r in self.tightest(top):
            bound = "" if r.bound is None else _num(r.bound)
            flag = "" if r.finite else " [NaN]" if r.nan and not r.inf else " [inf]"
            lines.append(
                f"{r.index:>5}  {r.op:<18} {_num(r.max_abs):>10} {bound:>10} {_num(r.headroom):>9}  "
                f"{r.verdict:<8} {r.limited_by:<11} {_short(r.output)}{flag}"
            )
        floors = sorted((r for r in self.rows if r.floor is not None), key=lambda r: r.floor)
        shown = [r for r in floors if r.floor_verdict != "ok"] or floors[:3]
        if shown:
            lines += ["", f"{'#':>5}  {'op':<18} {'min|den|':>10}  verdict    output"]
            for r in shown[:top]:
                lines.append(f"{r.index:>5}  {r.op:<18} {_num(r.floor):>10}  {r.floor_verdict:<10} {_short(r.output)}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _num(v: float) -> str:
    if v is None:
        return ""
    if math.isinf(v) or math.isnan(v):
        return str(v)
    return f"{v:.4g}"


def _short(name: str, width: int = 70) -> str:
    return name if len(name) <= width else "..." + name[-(width - 3) :]


# ---------------------------------------------------------------------------------------------------------------
# Flatbuffer side: builtin options.


class _Flatbuffer:
    """The builtin options :func:`~nafnet_litert.litert.graph.read_graph` does not keep (constants are read by
    :meth:`~nafnet_litert.litert.graph.Graph.const_value`)."""

    def __init__(self, buf: bytes) -> None:
        from ai_edge_litert import schema_py_generated as schema

        self.schema = schema
        self.buf = buf
        self.model = schema.Model.GetRootAsModel(buf, 0)
        self.subgraph = self.model.Subgraphs(0)

    def options(self, op_index: int, cls_name: str):
        """The op's builtin options as ``schema.<cls_name>``, or None when the op has none."""
        table = self.subgraph.Operators(op_index).BuiltinOptions()
        if table is None:
            return None
        opts = getattr(self.schema, cls_name)()
        opts.Init(table.Bytes, table.Pos)
        return opts


# ---------------------------------------------------------------------------------------------------------------
# Bounds.


def _peak(a: np.ndarray) -> float:
    """max over non-NaN values (NaN when all are NaN; 0 for an empty array)."""
    a = np.asarray(a)
    if a.size == 0:
        return 0.0
    m = float(a.max())
    if math.isnan(m):
        rest = a[~np.isnan(a)]
        return float(rest.max()) if rest.size else math.nan
    return m


def _same_pads(size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """TFLite SAME padding: (before, after) along one axis."""
    out = -(-size // stride)
    eff = (k - 1) * dilation + 1
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


def _pad_nchw(x, padding: int, kh: int, kw: int, sh: int, sw: int, dh: int = 1, dw: int = 1):
    """Zero-pad an NCHW torch tensor the way TFLite pads for ``padding`` (schema.Padding SAME=0 / VALID=1)."""
    import torch.nn.functional as F

    if padding != 0:  # VALID
        return x
    top, bottom = _same_pads(x.shape[2], kh, sh, dh)
    left, right = _same_pads(x.shape[3], kw, sw, dw)
    if top or bottom or left or right:
        x = F.pad(x, (left, right, top, bottom))
    return x


def conv_bound(
    x_nhwc: np.ndarray,
    filt: np.ndarray,
    bias: np.ndarray | None,
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    padding: str = "SAME",
    depthwise: bool = False,
) -> float:
    """max over outputs of ``sum |w| |x| + |b|`` for a TFLite CONV_2D (filter ``[O,kh,kw,I]``, groups = C / I) or
    DEPTHWISE_CONV_2D (filter ``[1,kh,kw,C*mult]``), in float64.

    CONV_2D runs ``torch.nn.functional.conv2d`` on NCHW (a 1x1, stride-1, ungrouped one a matrix product);
    DEPTHWISE_CONV_2D sums the kh*kw shifted, strided NHWC slices times the tap's |w| (torch's float64 depthwise
    convolution took ~0.2 s for one 32x32x256 op)."""
    import torch
    import torch.nn.functional as F

    n, h, w_, c = x_nhwc.shape
    w = np.abs(np.asarray(filt, np.float64))
    kh, kw = w.shape[1], w.shape[2]
    (sh, sw), (dh, dw) = stride, dilation
    b = None if bias is None else np.abs(np.asarray(bias, np.float64)).reshape(-1)
    xa = np.abs(np.asarray(x_nhwc, np.float64))
    if depthwise:
        mult = w.shape[3] // c
        if w.shape[3] != c * mult:
            raise ValueError(f"depthwise filter {list(w.shape)} does not fit {c} input channels")
        if padding == "SAME":
            (top, bottom), (left, right) = _same_pads(h, kh, sh, dh), _same_pads(w_, kw, sw, dw)
            xa = np.pad(xa, ((0, 0), (top, bottom), (left, right), (0, 0)))
        if mult > 1:  # output channel c * mult + m reads input channel c
            xa = np.repeat(xa, mult, axis=3)
        ho = (xa.shape[1] - (kh - 1) * dh - 1) // sh + 1
        wo = (xa.shape[2] - (kw - 1) * dw - 1) // sw + 1
        if ho <= 0 or wo <= 0:
            return 0.0
        acc = np.zeros((n, ho, wo, c * mult)) if b is None else np.broadcast_to(b, (n, ho, wo, c * mult)).copy()
        for u in range(kh):
            for v in range(kw):
                tap = xa[:, u * dh : u * dh + (ho - 1) * sh + 1 : sh, v * dw : v * dw + (wo - 1) * sw + 1 : sw]
                acc += tap * w[0, u, v]
        return _peak(acc)
    if c % w.shape[3]:
        raise ValueError(f"conv filter {list(w.shape)} does not fit {c} input channels")
    groups = c // w.shape[3]
    if kh == kw == 1 and stride == (1, 1) and groups == 1:
        y = torch.from_numpy(xa.reshape(-1, c)) @ torch.from_numpy(w.reshape(w.shape[0], c)).T
        if b is not None:
            y += torch.from_numpy(b)
        return _peak(y.numpy())
    xt = torch.from_numpy(xa).permute(0, 3, 1, 2)
    xt = _pad_nchw(xt, 0 if padding == "SAME" else 1, kh, kw, sh, sw, dh, dw)
    wt = torch.from_numpy(np.ascontiguousarray(w.transpose(0, 3, 1, 2)))  # [O, I, kh, kw]
    with torch.no_grad():
        bt = None if b is None else torch.from_numpy(b)
        y = F.conv2d(xt, wt, bt, stride=stride, dilation=dilation, groups=groups)
    return _peak(y.numpy())


def reduce_bound(x: np.ndarray, axes) -> float:
    """max over outputs of ``sum |x|`` over ``axes`` (a MEAN computed as a sum, then one division)."""
    axes = tuple(sorted({int(a) % x.ndim for a in np.atleast_1d(axes)})) if x.ndim else ()
    s = np.abs(x).sum(axis=axes, dtype=np.float64)
    return _peak(s)


def pool_bound(x_nhwc: np.ndarray, filt: tuple[int, int], stride: tuple[int, int], padding: str = "SAME") -> float:
    """max over windows of ``sum |x|`` for AVERAGE_POOL_2D (padding contributes zeros, i.e. nothing)."""
    import torch
    import torch.nn.functional as F

    xa = torch.from_numpy(np.abs(np.asarray(x_nhwc, np.float64))).permute(0, 3, 1, 2)
    xa = _pad_nchw(xa, 0 if padding == "SAME" else 1, filt[0], filt[1], stride[0], stride[1])
    with torch.no_grad():
        y = F.avg_pool2d(xa, filt, stride) * (filt[0] * filt[1])
    return _peak(y.numpy())


def matmul_bound(x: np.ndarray, w_oi: np.ndarray, bias: np.ndarray | None) -> float:
    """FULLY_CONNECTED: max of ``|x| |W|^T + |b|`` with ``x`` flattened to ``[-1, I]`` and ``W`` ``[O, I]``."""
    w = np.abs(np.asarray(w_oi, np.float64))
    xa = np.abs(np.asarray(x, np.float64)).reshape(-1, w.shape[1])
    y = xa @ w.T
    if bias is not None:
        y = y + np.abs(np.asarray(bias, np.float64)).reshape(1, -1)
    return _peak(y)


# ---------------------------------------------------------------------------------------------------------------
# The measurement.


def _stats(arrays: list[np.ndarray]) -> tuple[float, bool, bool, int]:
    """(max |v| over non-NaN values, any NaN, any inf, index of the array holding the max)."""
    best, nan, inf, arg = 0.0, False, False, 0
    for k, a in enumerate(arrays):
        if a.size == 0 or a.dtype.kind not in "fc":
            continue
        m = float(np.max(np.abs(a)))
        if math.isnan(m):
            nan = True
            m = float(np.nanmax(np.abs(a))) if not np.isnan(a).all() else 0.0
        if math.isinf(m):
            inf = True
        if m > best:
            best, arg = m, k
    return best, nan, inf, arg


def _min_abs(a: np.ndarray) -> float:
    if a.size == 0:
        return math.inf
    with np.errstate(invalid="ignore"):
        m = float(np.nanmin(np.abs(a))) if not np.isnan(a).all() else math.nan
    return m


def measure_headroom(model_path: str | Path, x_nchw: np.ndarray, threads: int = 2) -> HeadroomReport:
    """Run ``model_path`` once on ``x_nchw`` (float32 ``[1,C,H,W]``, transposed here for NHWC models) with every
    intermediate tensor preserved and report every op's fp16 headroom (see the module docstring)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from ..litert.runtime import infer_io, read_sidecar
    from ..litert.graph import read_graph

    t0 = time.perf_counter()
    model_path = Path(model_path)
    graph = read_graph(model_path)
    fb = _Flatbuffer(model_path.read_bytes())
    if fb.subgraph.OperatorsLength() != len(graph.ops):
        raise ModelFileError(f"{model_path.name}: flatbuffer and graph disagree on the op count")
    in_index = graph.inputs[0]
    in_shape = graph.tensors[in_index].shape
    io = infer_io(in_shape, read_sidecar(model_path))
    x = np.asarray(x_nchw, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    expected = (1, io.channels, io.height, io.width)
    if x.shape != expected:
        raise ValueError(f"input must be {list(expected)} (NCHW), got {list(x.shape)}")
    if io.layout == "NHWC":
        x = x.transpose(0, 2, 3, 1)
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
    interp.set_tensor(in_index, np.ascontiguousarray(x))
    interp.invoke()

    producer = {o: k for k, op in enumerate(graph.ops) for o in op.outputs if o >= 0}
    consumers: dict[int, list[tuple[int, int]]] = {}
    for k, op in enumerate(graph.ops):
        for pos, i in enumerate(op.inputs):
            consumers.setdefault(i, []).append((k, pos))
    notes: list[str] = []
    const_cache: dict[int, np.ndarray | None] = {}

    def const_of(i: int) -> np.ndarray | None:
        """The tensor's constant data, following a DEQUANTIZE back to its float16 constant."""
        if i not in const_cache:
            src = i
            p = producer.get(i)
            if p is not None and graph.ops[p].name == "DEQUANTIZE":
                src = graph.ops[p].inputs[0]
            v = graph.const_value(src)  # the package's one constant reader
            const_cache[i] = v.astype(np.float32) if v is not None and v.dtype == np.float16 else v
        return const_cache[i]

    def get(i: int) -> np.ndarray | None:
        try:
            return interp.get_tensor(i)
        except (ValueError, RuntimeError):
            return None

    def weight(i: int) -> tuple[np.ndarray | None, str | None]:
        """A filter or bias: the interpreter's value, checked against the file's constant."""
        if i < 0:
            return None, None
        live, const = get(i), const_of(i)
        if const is None:
            return live, ("interpreter" if live is not None else None)
        if live is not None and live.shape == const.shape and np.array_equal(live.astype(np.float32), const):
            return live, "interpreter"
        return const, "constant"

    rows: list[HeadroomRow] = []
    for k, op in enumerate(graph.ops):
        outs = [o for o in op.outputs if o >= 0]
        out_vals = [v for v in (get(o) for o in outs) if v is not None]
        max_abs, nan, inf, arg = _stats(out_vals)
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
        # constant float inputs (the GPU stores them in fp16 too)
        cmax = None
        for i in op.inputs:
            if i >= 0 and graph.tensors[i].dtype in _FLOAT_TYPES and const_of(i) is not None:
                c = const_of(i)
                if c.size:
                    m = float(np.max(np.abs(c)))
                    cmax = m if cmax is None else max(cmax, m)
        row.const_max = cmax
        try:
            row.bound, row.weights = _bound(op, k, fb, get, weight, const_of)
        except (ValueError, RuntimeError) as e:
            notes.append(f"op {k} {op.name}: no accumulator bound ({e})")
        if row.bound is not None and math.isnan(row.bound):  # NaN inputs everywhere: reported as non-finite
            row.bound = None
        if op.name in DENOMINATOR_INPUT and len(op.inputs) > DENOMINATOR_INPUT[op.name]:
            den = op.inputs[DENOMINATOR_INPUT[op.name]]
            v = get(den)
            if v is None:
                v = const_of(den)
            if v is not None and v.dtype.kind == "f":
                floor = _min_abs(v)
                row.floor = None if math.isnan(floor) else floor  # all NaN: reported as non-finite instead
                becomes_inf = op.name != "SQRT" or any(
                    graph.ops[c].name == "RSQRT" or (graph.ops[c].name == "DIV" and pos == 1)
                    for o in outs
                    for c, pos in consumers.get(o, [])
                )
                row.floor_verdict = None if row.floor is None else floor_verdict(row.floor, becomes_inf)
        peak = {"output": max_abs, "accumulator": row.bound or 0.0, "constant": cmax or 0.0}
        row.limited_by = max(peak, key=lambda q: peak[q])
        top = peak[row.limited_by]
        row.headroom = math.inf if top == 0 else (0.0 if math.isinf(top) else FP16_MAX / top)
        row.verdict = overflow_verdict(row.headroom)
        rows.append(row)
        del out_vals
    return HeadroomReport(
        model=model_path.name,
        rows=rows,
        seconds=time.perf_counter() - t0,
        input_layout=io.layout,
        notes=notes,
    )


def _bound(op, k: int, fb: _Flatbuffer, get, weight, const_of) -> tuple[float | None, str | None]:
    """The accumulator bound of op ``k`` and where its weights came from, or (None, None)."""
    name = op.name
    if name not in ACCUMULATING_OPS:
        return None, None
    x = get(op.inputs[0])
    if x is None or x.dtype.kind != "f":
        raise ValueError("input not readable as float")
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        depthwise = name == "DEPTHWISE_CONV_2D"
        filt, src = weight(op.inputs[1])
        bias, bsrc = weight(op.inputs[2]) if len(op.inputs) > 2 else (None, None)
        if filt is None:
            raise ValueError("filter not readable")
        opts = fb.options(k, "DepthwiseConv2DOptions" if depthwise else "Conv2DOptions")
        stride = (opts.StrideH() or 1, opts.StrideW() or 1) if opts else (1, 1)
        dilation = (opts.DilationHFactor() or 1, opts.DilationWFactor() or 1) if opts else (1, 1)
        padding = "VALID" if opts is not None and opts.Padding() == fb.schema.Padding.VALID else "SAME"
        b = conv_bound(x, filt, bias, stride, dilation, padding, depthwise)
        return b, ("constant" if "constant" in (src, bsrc) else src)
    if name == "FULLY_CONNECTED":
        filt, src = weight(op.inputs[1])
        bias, bsrc = weight(op.inputs[2]) if len(op.inputs) > 2 else (None, None)
        if filt is None:
            raise ValueError("weights not readable")
        return matmul_bound(x, filt, bias), ("constant" if "constant" in (src, bsrc) else src)
    if name == "BATCH_MATMUL":
        y, src = weight(op.inputs[1])
        if y is None:
            raise ValueError("second operand not readable")
        opts = fb.options(k, "BatchMatMulOptions")
        a = np.abs(np.asarray(x, np.float64))
        bm = np.abs(np.asarray(y, np.float64))
        if opts is not None and opts.AdjX():
            a = np.swapaxes(a, -1, -2)
        if opts is not None and opts.AdjY():
            bm = np.swapaxes(bm, -1, -2)
        p = np.matmul(a, bm)
        return _peak(p), src
    if name in ("MEAN", "SUM"):
        axes = get(op.inputs[1])
        if axes is None:
            axes = const_of(op.inputs[1])
        if axes is None:
            raise ValueError("reduction axes not readable")
        return reduce_bound(x, axes), None
    if name == "AVERAGE_POOL_2D":
        opts = fb.options(k, "Pool2DOptions")
        if opts is None:
            raise ValueError("no Pool2DOptions")
        padding = "VALID" if opts.Padding() == fb.schema.Padding.VALID else "SAME"
        filt = (opts.FilterHeight(), opts.FilterWidth())
        stride = (opts.StrideH() or 1, opts.StrideW() or 1)
        return pool_bound(x, filt, stride, padding), None
    return None, None


__all__ = [
    "FP16_MAX", "FP16_MIN_NORMAL", "FP16_MIN_SUBNORMAL", "HeadroomReport", "HeadroomRow", "conv_bound",
    "measure_headroom", "pool_bound", "reduce_bound",
]  # fmt: skip
