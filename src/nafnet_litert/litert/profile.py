"""Per-op CPU profile of a .tflite file from LiteRT's own profiler (the CompiledModel C API through ctypes).

ai-edge-litert's Python bindings do not expose the profiler, but the ``libLiteRt.so`` they ship does:
``enable_profiling`` in the runtime options makes the compiled model record one event per op, and XNNPACK reports
each of its own operators (``DELEGATE_PROFILED_OPERATOR_INVOKE_EVENT``, tagged with its kernel, e.g.
``Fully Connected (NC, F32) GEMM``). Ops XNNPACK does not take run as TFLite kernels between XNNPACK partitions
(``OPERATOR_INVOKE_EVENT`` with the graph's node index). Events come in execution order, so each XNNPACK operator
is mapped back to its graph node: the n-th operator of a partition is the n-th node (DEQUANTIZE aside: XNNPACK
folds those into the weights at load) after the previous TFLite-kernel node.

The structs below follow LiteRT's C headers (``litert_profiler_event.h``, ``litert_model_types.h``,
``litert_layout.h``; ai-edge-litert 2.3). Options are the runtime's TOML strings (``runtime_options_string``,
``xnnpack``). Every call's status is checked; a mismatch raises :class:`ProfileError` instead of guessing.
"""

from __future__ import annotations

import ctypes as C
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ProfileError
from .graph import read_graph

_OPERATOR_INVOKE = 1 << 1  # a TFLite kernel; event_metadata1 = graph node index
_DELEGATE_PROFILED_OPERATOR = 1 << 3  # an XNNPACK operator; event_metadata1 = its index in the partition
_CPU = 1  # kLiteRtHwAcceleratorCpu
_FLOAT32 = 1  # kLiteRtElementTypeFloat32


class _Layout(C.Structure):
    _fields_ = [("rank_bits", C.c_uint32), ("dimensions", C.c_int32 * 8), ("strides", C.c_uint32 * 8)]


class _RankedTensorType(C.Structure):
    _fields_ = [("element_type", C.c_int32), ("layout", _Layout)]


class _MemoryUsage(C.Structure):
    _fields_ = [("total", C.c_size_t), ("in_use", C.c_size_t), ("private_footprint", C.c_size_t)]


class _Event(C.Structure):
    _fields_ = [
        ("tag", C.c_char_p),
        ("event_type", C.c_int32),
        ("start_us", C.c_uint64),
        ("elapsed_us", C.c_uint64),
        ("begin_mem", _MemoryUsage),
        ("end_mem", _MemoryUsage),
        ("metadata1", C.c_uint64),
        ("metadata2", C.c_uint64),
        ("source", C.c_int32),
    ]


@dataclass
class OpTime:
    node: int  # graph node index
    op: str  # the graph's op type (CONV_2D, MUL, ...)
    kernel: str  # what ran it: XNNPACK's operator name, or "TFLite <OP>" for a TFLite kernel
    us: float  # mean microseconds per inference


@dataclass
class Profile:
    model: str
    threads: int
    runs: int
    wall_ms: float  # mean wall-clock of the profiled runs (profiling included): the same average as the ops'
    ops: list[OpTime] = field(default_factory=list)
    partitions: int = 0  # XNNPACK partitions (1 = the whole graph in XNNPACK)

    @property
    def total_ms(self) -> float:
        return sum(o.us for o in self.ops) / 1e3


def _lib() -> C.CDLL:
    import ai_edge_litert

    path = Path(ai_edge_litert.__file__).parent / "libLiteRt.so"
    if not path.is_file():
        raise ProfileError(f"LiteRT's native library is not at {path}: the profile needs ai-edge-litert 2.3")
    return C.CDLL(str(path))


def _ok(status: int, what: str) -> None:
    if status != 0:
        raise ProfileError(f"LiteRT {what} failed (status {status})")


def _cpu_options(lib, opts, threads: int, keep: list) -> None:
    """CPU (XNNPACK, ``threads`` threads) with the profiler enabled, as opaque options whose payloads Python owns."""
    vp = C.c_void_p
    _ok(lib.LiteRtSetOptionsHardwareAccelerators(opts, _CPU), "options (CPU)")
    no_free = C.CFUNCTYPE(None, vp)(lambda p: None)  # the payloads are Python-owned
    keep.append(no_free)
    for ident, text in (
        (b"runtime_options_string", "enable_profiling = true\n"),
        (b"xnnpack", f"num_threads = {int(threads)}\n"),
    ):
        payload = C.create_string_buffer(text.encode())
        opaque = vp()
        _ok(lib.LiteRtCreateOpaqueOptions(ident, C.cast(payload, vp), no_free, C.byref(opaque)), "options")
        _ok(lib.LiteRtAddOpaqueOptions(opts, opaque), "options")
        keep.append(payload)


def _host_buffer(lib, shape: tuple[int, ...], keep: list, buffers: list) -> tuple[np.ndarray, C.c_void_p]:
    """A float32 array in 64-byte aligned host memory (what LiteRT wants) and the tensor buffer over it."""
    n = int(np.prod(shape)) * 4
    raw = np.zeros(n + 64, np.uint8)
    off = (-raw.ctypes.data) % 64
    arr = raw[off : off + n].view(np.float32).reshape(shape)
    t = _RankedTensorType()
    t.element_type = _FLOAT32
    t.layout.rank_bits = len(shape)  # rank:7, has_strides:1 = 0
    for i, d in enumerate(shape):
        t.layout.dimensions[i] = d
    buf = C.c_void_p()
    _ok(lib.LiteRtCreateTensorBufferFromHostMemory(C.byref(t), C.c_void_p(arr.ctypes.data), C.c_size_t(n), None,
                                                   C.byref(buf)), "tensor buffer")  # fmt: skip
    buffers.append(buf)
    keep.append(raw)
    return arr, buf


def _profiled_runs(lib, compiled, ins, outs, runs: int, warmup: int) -> tuple[list[float], C.Array]:
    """``warmup`` plain runs, then ``runs`` with the profiler on: (wall ms of each, the profiler's events)."""
    vp = C.c_void_p

    def run() -> None:
        _ok(lib.LiteRtRunCompiledModel(compiled, C.c_size_t(0), C.c_size_t(1), ins, C.c_size_t(1), outs), "run")

    for _ in range(warmup):
        run()
    prof = vp()
    _ok(lib.LiteRtCompiledModelGetProfiler(compiled, C.byref(prof)), "profiler")
    if not prof.value:
        raise ProfileError("this LiteRT build returned no profiler")
    _ok(lib.LiteRtResetProfiler(prof), "profiler reset")
    _ok(lib.LiteRtStartProfiler(prof), "profiler start")
    walls = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run()
        walls.append((time.perf_counter() - t0) * 1e3)
    _ok(lib.LiteRtStopProfiler(prof), "profiler stop")
    n = C.c_int()
    _ok(lib.LiteRtGetNumProfilerEvents(prof, C.byref(n)), "profiler events")
    events = (_Event * n.value)()
    _ok(lib.LiteRtGetProfilerEvents(prof, n, events), "profiler events")
    return walls, events


def profile_model(model_path: str | Path, threads: int = 2, runs: int = 5, warmup: int = 2) -> Profile:
    """Run ``model_path`` on LiteRT's CPU accelerator (XNNPACK, ``threads`` threads) with the profiler on and
    return the mean time of every op over ``runs`` inferences, each mapped to its graph node."""
    lib = _lib()
    vp = C.c_void_p
    graph = read_graph(model_path)
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ProfileError("the profile runs image models: one input and one output")
    t_in, t_out = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    if t_in.dtype != "FLOAT32" or t_out.dtype != "FLOAT32":
        raise ProfileError(f"the profile runs float32 models, got {t_in.dtype} -> {t_out.dtype}")
    keep: list = []  # ctypes objects the runtime points into
    buffers: list = []
    env, model, opts, compiled = vp(), vp(), vp(), vp()
    _ok(lib.LiteRtCreateEnvironment(0, None, C.byref(env)), "environment")
    try:
        _ok(lib.LiteRtCreateModelFromFile(env, str(model_path).encode(), C.byref(model)), "model load")
        _ok(lib.LiteRtCreateOptions(C.byref(opts)), "options")
        _cpu_options(lib, opts, threads, keep)
        _ok(lib.LiteRtCreateCompiledModel(env, model, opts, C.byref(compiled)), "compile")
        x, bx = _host_buffer(lib, tuple(t_in.shape), keep, buffers)
        _, by = _host_buffer(lib, tuple(t_out.shape), keep, buffers)
        x[:] = np.random.default_rng(0).random(x.shape, dtype=np.float32)
        walls, events = _profiled_runs(lib, compiled, (vp * 1)(bx), (vp * 1)(by), runs, warmup)
        ops, partitions = _map_events(graph, events, runs)
    finally:
        for b in buffers:
            lib.LiteRtDestroyTensorBuffer(b)
        if compiled.value:
            lib.LiteRtDestroyCompiledModel(compiled)
        if model.value:
            lib.LiteRtDestroyModel(model)
        lib.LiteRtDestroyEnvironment(env)
    return Profile(Path(model_path).name, threads, runs, float(np.mean(walls)), ops, partitions)


#: XNNPACK operator names each graph op may run as (checked while mapping, so a fused or reordered partition is an
#: error rather than a wrong table)
_KERNELS = {
    "CONV_2D": ("Convolution", "Fully Connected"),
    "DEPTHWISE_CONV_2D": ("Convolution",),
    "MUL": ("Multiply", "Square"),
    "ADD": ("Add",),
    "SUB": ("Subtract",),
    "RSQRT": ("Reciprocal Square Root",),
    "MEAN": ("Mean",),
    "SLICE": ("Slice", "Copy"),
    "TRANSPOSE": ("Transpose", "Copy"),
    "PAD": ("Constant Pad",),
}


def _map_events(graph, events, runs: int) -> tuple[list[OpTime], int]:
    """Sum the op events of ``runs`` inferences per graph node and divide by ``runs``."""
    compute = [i for i, op in enumerate(graph.ops) if op.name != "DEQUANTIZE"]
    position = {node: k for k, node in enumerate(compute)}
    per_node: dict[int, list] = {}
    base = start = partitions = fused = 0
    for e in events:
        if e.event_type == _OPERATOR_INVOKE:
            node = int(e.metadata1)
            if node not in position:
                raise ProfileError(f"a profiler event names node {node}, which is not a compute node of the graph")
            kernel = f"TFLite {graph.ops[node].name}"
            base = (position[node] + 1) % len(compute)
        elif e.event_type == _DELEGATE_PROFILED_OPERATOR:
            local = int(e.metadata1)
            if local == 0:  # a new XNNPACK partition starts where the previous kernel left off
                start = base
                partitions += 1
                fused = 0
            kernel = e.tag.decode(errors="replace") if e.tag else "?"
            k = start + local + fused
            # XNNPACK folds a zero PAD into the convolution that reads it: that PAD has no operator of its own
            while k < len(compute) and graph.ops[compute[k]].name == "PAD" and not kernel.startswith("Constant Pad"):
                per_node.setdefault(compute[k], ["PAD", "folded into the next Convolution (XNNPACK)", 0.0])
                fused += 1
                k += 1
            if k >= len(compute):
                raise ProfileError("the profiler's XNNPACK operators do not map onto the graph (more than its nodes)")
            node = compute[k]
            allowed = _KERNELS.get(graph.ops[node].name)
            if allowed and not kernel.startswith(allowed):
                raise ProfileError(f"XNNPACK operator {local} ({kernel}) does not match graph node {node} "
                                   f"({graph.ops[node].name}): the partition was fused or reordered")  # fmt: skip
            base = (k + 1) % len(compute)
        else:
            continue
        per_node.setdefault(node, [graph.ops[node].name, kernel, 0.0])[2] += float(e.elapsed_us)
    ops = [OpTime(node, name, kernel, us / runs) for node, (name, kernel, us) in sorted(per_node.items())]
    return ops, partitions // max(1, runs)
