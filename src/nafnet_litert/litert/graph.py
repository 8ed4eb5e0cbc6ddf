"""Read a .tflite flatbuffer with ``ai_edge_litert.schema_py_generated``: ops, tensors, ranks, signature.

Pure parsing (no interpreter), so it works on any model, including ones the runtime would refuse.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ModelFileError

_T = TypeVar("_T")


def _present(value: _T | None, what: str) -> _T:
    """``value`` from a flatbuffer accessor of the generated schema, which returns None for an absent table or
    vector; absent where the format requires one means a malformed file."""
    if value is None:
        raise ModelFileError(f"corrupt LiteRT flatbuffer (no {what})")
    return value


def _vector(as_numpy: Any, what: str) -> Any:
    """The numpy array of a generated ``...AsNumpy()`` accessor, which returns ``0`` for an absent vector."""
    if isinstance(as_numpy, int):
        raise ModelFileError(f"corrupt LiteRT flatbuffer (no {what})")
    return as_numpy


def _ints(as_numpy: Any, length: int, what: str) -> list[int]:
    """An int vector read ``...AsNumpy()`` as ints; empty where ``length`` (its ``...Length()``) is 0."""
    return [int(x) for x in _vector(as_numpy, what)] if length else []


@dataclass
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str
    buffer: int = 0  # index into the model's buffers; 0 = no constant data


@dataclass
class OpInfo:
    name: str
    inputs: list[int]
    outputs: list[int]


@dataclass
class Graph:
    """The main subgraph of a .tflite model, reduced to what an audit needs."""

    path: Path | None
    file_size: int
    ops: list[OpInfo]
    tensors: list[TensorInfo]
    inputs: list[int]
    outputs: list[int]
    signatures: list[dict] = field(default_factory=list)
    raw: bytes = field(default=b"", repr=False)

    def const_value(self, index: int):
        """The constant data of tensor ``index`` as a numpy array of its shape, or None for a runtime tensor."""
        import numpy as np
        from ai_edge_litert import schema_py_generated as schema

        t = self.tensors[index]
        if not t.buffer or not self.raw:
            return None
        b = _present(schema.Model.GetRootAsModel(self.raw, 0).Buffers(t.buffer), f"buffer {t.buffer}")
        if b.DataLength():
            data = _vector(b.DataAsNumpy(), f"buffer {t.buffer} data").tobytes()
        elif b.Offset() > 1:
            data = self.raw[b.Offset() : b.Offset() + b.Size()]
        else:
            return None
        dtype = _NUMPY_TYPES.get(t.dtype)
        if dtype is None:
            return None
        return np.frombuffer(data, dtype=dtype).reshape(t.shape)

    def builtin_options(self, op_index: int, cls_name: str):
        """Op ``op_index``'s builtin options as ``schema_py_generated.<cls_name>`` (e.g. ``"Conv2DOptions"``), or
        None when the op has none."""
        from ai_edge_litert import schema_py_generated as schema

        subgraph = _present(schema.Model.GetRootAsModel(self.raw, 0).Subgraphs(0), "subgraph 0")
        table = _present(subgraph.Operators(op_index), f"operator {op_index}").BuiltinOptions()
        if table is None:
            return None
        opts = getattr(schema, cls_name)()
        opts.Init(table.Bytes, table.Pos)
        return opts

    @property
    def node_count(self) -> int:
        return len(self.ops)

    def op_histogram(self) -> dict[str, int]:
        return dict(Counter(op.name for op in self.ops).most_common())

    def op_tensor_rank(self, op: OpInfo) -> int:
        ids = [i for i in op.inputs + op.outputs if i >= 0]
        return max((len(self.tensors[i].shape) for i in ids), default=0)

    def max_rank(self) -> int:
        return max((self.op_tensor_rank(op) for op in self.ops), default=0)

    def ops_above_rank(self, rank: int = 4) -> dict[str, int]:
        return dict(Counter(op.name for op in self.ops if self.op_tensor_rank(op) > rank))

    def io(self) -> dict[str, list[dict]]:
        def desc(ids: list[int]) -> list[dict]:
            return [
                {"name": self.tensors[i].name, "shape": list(self.tensors[i].shape), "dtype": self.tensors[i].dtype}
                for i in ids
            ]

        return {"inputs": desc(self.inputs), "outputs": desc(self.outputs)}


_NUMPY_TYPES = {"FLOAT32": "<f4", "FLOAT16": "<f2", "INT32": "<i4", "INT64": "<i8", "INT8": "i1", "UINT8": "u1"}


def _enum_names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def _text(name: bytes | None) -> str:
    """A flatbuffer string (None where absent) as text."""
    return (name or b"").decode()


def read_graph(path_or_bytes: str | Path | bytes) -> Graph:
    """Parse a .tflite file (or its bytes). Raises :class:`ModelFileError` on anything that is not one."""
    from ai_edge_litert import schema_py_generated as schema

    path = None
    if isinstance(path_or_bytes, (bytes, bytearray)):
        buf = bytes(path_or_bytes)
    else:
        path = Path(path_or_bytes)
        if not path.is_file():
            raise ModelFileError(f"model not found: {path}")
        buf = path.read_bytes()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        name = path.name if path else "buffer"
        raise ModelFileError(f"{name}: not a LiteRT/TFLite flatbuffer (missing the TFL3 identifier)")
    try:
        model = schema.Model.GetRootAsModel(buf, 0)
        op_names = _enum_names(schema.BuiltinOperator)
        type_names = _enum_names(schema.TensorType)
        g = _present(model.Subgraphs(0), "subgraph 0")
        tensors = []
        for j in range(g.TensorsLength()):
            t = _present(g.Tensors(j), f"tensor {j}")
            shape = tuple(_ints(t.ShapeAsNumpy(), t.ShapeLength(), f"tensor {j} shape"))
            tensors.append(TensorInfo(_text(t.Name()), shape, type_names.get(t.Type(), str(t.Type())), t.Buffer()))
        ops = []
        for i in range(g.OperatorsLength()):
            op = _present(g.Operators(i), f"operator {i}")
            oc = _present(model.OperatorCodes(op.OpcodeIndex()), f"operator code {op.OpcodeIndex()}")
            code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
            name = op_names.get(code, f"OP_{code}")
            if name == "CUSTOM":
                name = f"CUSTOM:{_text(oc.CustomCode())}"
            ins = _ints(op.InputsAsNumpy(), op.InputsLength(), f"operator {i} inputs")
            outs = _ints(op.OutputsAsNumpy(), op.OutputsLength(), f"operator {i} outputs")
            ops.append(OpInfo(name, ins, outs))
        inputs = [int(x) for x in _vector(g.InputsAsNumpy(), "subgraph inputs")]
        outputs = [int(x) for x in _vector(g.OutputsAsNumpy(), "subgraph outputs")]
        sigs = []
        for k in range(model.SignatureDefsLength()):
            sd = _present(model.SignatureDefs(k), f"signature {k}")
            sig_ins = [_present(sd.Inputs(i), f"signature {k} input {i}") for i in range(sd.InputsLength())]
            sig_outs = [_present(sd.Outputs(i), f"signature {k} output {i}") for i in range(sd.OutputsLength())]
            sigs.append(
                {
                    "key": _text(sd.SignatureKey()),
                    "inputs": [_text(m.Name()) for m in sig_ins],
                    "outputs": [_text(m.Name()) for m in sig_outs],
                }
            )
    except ModelFileError as e:  # a table or vector the format requires is absent
        name = path.name if path else "buffer"
        raise ModelFileError(f"{name}: {e}") from None
    except Exception as e:  # a corrupt flatbuffer raises anything from struct.error to IndexError
        name = path.name if path else "buffer"
        raise ModelFileError(f"{name}: corrupt LiteRT flatbuffer ({type(e).__name__}: {e})") from None
    return Graph(path, len(buf), ops, tensors, inputs, outputs, sigs, buf)
