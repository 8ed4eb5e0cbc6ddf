"""Read a .tflite flatbuffer with ``ai_edge_litert.schema_py_generated``: ops, tensors, ranks, signature.

Pure parsing (no interpreter), so it works on any model, including ones the runtime would refuse.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelFileError


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
        b = schema.Model.GetRootAsModel(self.raw, 0).Buffers(t.buffer)
        if b.DataLength():
            data = b.DataAsNumpy().tobytes()
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

        table = schema.Model.GetRootAsModel(self.raw, 0).Subgraphs(0).Operators(op_index).BuiltinOptions()
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
        g = model.Subgraphs(0)
        tensors = []
        for j in range(g.TensorsLength()):
            t = g.Tensors(j)
            shape = tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else ()
            tensors.append(
                TensorInfo((t.Name() or b"").decode(), shape, type_names.get(t.Type(), str(t.Type())), t.Buffer())
            )
        ops = []
        for i in range(g.OperatorsLength()):
            op = g.Operators(i)
            oc = model.OperatorCodes(op.OpcodeIndex())
            code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
            name = op_names.get(code, f"OP_{code}")
            if name == "CUSTOM":
                name = f"CUSTOM:{(oc.CustomCode() or b'').decode()}"
            ins = [int(x) for x in op.InputsAsNumpy()] if op.InputsLength() else []
            outs = [int(x) for x in op.OutputsAsNumpy()] if op.OutputsLength() else []
            ops.append(OpInfo(name, ins, outs))
        inputs = [int(x) for x in g.InputsAsNumpy()]
        outputs = [int(x) for x in g.OutputsAsNumpy()]
        sigs = []
        for k in range(model.SignatureDefsLength()):
            sd = model.SignatureDefs(k)
            sigs.append(
                {
                    "key": (sd.SignatureKey() or b"").decode(),
                    "inputs": [(sd.Inputs(i).Name() or b"").decode() for i in range(sd.InputsLength())],
                    "outputs": [(sd.Outputs(i).Name() or b"").decode() for i in range(sd.OutputsLength())],
                }
            )
    except Exception as e:  # a corrupt flatbuffer raises anything from struct.error to IndexError
        name = path.name if path else "buffer"
        raise ModelFileError(f"{name}: corrupt LiteRT flatbuffer ({type(e).__name__}: {e})") from None
    return Graph(path, len(buf), ops, tensors, inputs, outputs, sigs, buf)
