"""Edit a converted .tflite where litert-torch will not emit the op under test (SPLIT_V, GATHER, TOPK_V2, WHERE,
RFFT2D, a REDUCE_MAX of two constants, RESIZE_BILINEAR with both flags set).

Each edit starts from a real conversion in which a stand-in op computes the same values (a SPLIT for SPLIT_V, an
EMBEDDING_LOOKUP for GATHER, a channel REDUCE_MAX for TOPK_V2 with k = 1, ...), then swaps the op code, its options
and its inputs through the schema's object API (``ai_edge_litert.schema_py_generated``). Signatures, tensor names
and every other op stay as the converter wrote them, so the edited file still runs on LiteRT's CPU and carries the
``serving_default`` signature that Google's checker runs.
"""

from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools import flatbuffer_utils

_DTYPES = {
    np.dtype(np.float32): schema.TensorType.FLOAT32,
    np.dtype(np.int32): schema.TensorType.INT32,
    np.dtype(np.int64): schema.TensorType.INT64,
    np.dtype(np.bool_): schema.TensorType.BOOL,
    np.dtype(np.complex64): schema.TensorType.COMPLEX64,
}
_NUMPY = {v: k for k, v in _DTYPES.items()}
#: Builtin codes above 127 live in ``builtinCode`` only; ``deprecatedBuiltinCode`` then holds this placeholder.
_PLACEHOLDER = 127


def _code(name: str) -> int:
    return getattr(schema.BuiltinOperator, name)


class Editor:
    """One model's main subgraph, editable op by op; :meth:`to_bytes` writes it back."""

    def __init__(self, model: bytes) -> None:
        self.model = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
        self.graph = self.model.subgraphs[0]

    def op_name(self, k: int) -> str:
        oc = self.model.operatorCodes[self.graph.operators[k].opcodeIndex]
        code = max(oc.builtinCode, oc.deprecatedBuiltinCode)
        return next(n for n, v in vars(schema.BuiltinOperator).items() if v == code and not n.startswith("_"))

    def find(self, name: str) -> int:
        """Index of the only op called ``name`` (an edit that would be ambiguous is an error)."""
        found = [k for k in range(len(self.graph.operators)) if self.op_name(k) == name]
        if len(found) != 1:
            raise ValueError(f"expected one {name}, found {len(found)}")
        return found[0]

    def opcode(self, name: str) -> int:
        code = _code(name)
        for i, oc in enumerate(self.model.operatorCodes):
            if max(oc.builtinCode, oc.deprecatedBuiltinCode) == code:
                return i
        oc = schema.OperatorCodeT()
        oc.builtinCode = code
        oc.deprecatedBuiltinCode = min(code, _PLACEHOLDER)
        oc.version = 1
        self.model.operatorCodes.append(oc)
        return len(self.model.operatorCodes) - 1

    def tensor(self, name: str, shape, dtype, signature=None) -> int:
        """A new runtime tensor; ``signature`` is its shape signature where a dimension is dynamic (-1)."""
        t = schema.TensorT()
        t.name = name.encode()
        t.shape = list(shape)
        if signature is not None:
            t.shapeSignature = list(signature)
        t.type = _DTYPES[np.dtype(dtype)]
        t.buffer = 0
        self.graph.tensors.append(t)
        return len(self.graph.tensors) - 1

    def const(self, name: str, value) -> int:
        """A new constant tensor holding ``value`` (its own buffer)."""
        value = np.ascontiguousarray(value)
        buf = schema.BufferT()
        buf.data = np.frombuffer(value.tobytes(), np.uint8).copy()
        self.model.buffers.append(buf)
        k = self.tensor(name, value.shape, value.dtype)
        self.graph.tensors[k].buffer = len(self.model.buffers) - 1
        return k

    def value(self, tensor: int) -> np.ndarray:
        """The data of a constant tensor."""
        t = self.graph.tensors[tensor]
        data = self.model.buffers[t.buffer].data if t.buffer else None
        if data is None or not len(data):
            raise ValueError(f"tensor {tensor} ({t.name!r}) is not a constant")
        return np.frombuffer(bytes(np.asarray(data, np.uint8)), _NUMPY[t.type]).reshape(t.shape)

    def shape(self, tensor: int) -> tuple[int, ...]:
        return tuple(int(s) for s in self.graph.tensors[tensor].shape)

    def set_op(self, k: int, name: str, inputs=None, outputs=None, options=None, options_type: str | None = None):
        """Make op ``k`` a ``name`` op (its inputs/outputs replaced when given) with ``options`` (a ``*OptionsT``)."""
        op = self.graph.operators[k]
        op.opcodeIndex = self.opcode(name)
        if inputs is not None:
            op.inputs = list(inputs)
        if outputs is not None:
            op.outputs = list(outputs)
        if options is None:
            op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.NONE, None
        else:
            kind = options_type or type(options).__name__[: -len("T")]
            op.builtinOptionsType = getattr(schema.BuiltinOptions, kind)
            op.builtinOptions = options
        return op

    def insert(self, k: int, name: str, inputs, outputs, options=None, options_type: str | None = None) -> int:
        """A new ``name`` op at position ``k`` of the execution order."""
        op = schema.OperatorT()
        self.graph.operators.insert(k, op)
        self.set_op(k, name, inputs, outputs, options, options_type)
        return k

    def to_bytes(self) -> bytes:
        return bytes(flatbuffer_utils.convert_object_to_bytearray(self.model))


def options(cls_name: str, **fields):
    """A schema ``*OptionsT`` object with ``fields`` set (names as in the schema's object API)."""
    obj = getattr(schema, cls_name)()
    for key, value in fields.items():
        if not hasattr(obj, key):
            raise AttributeError(f"{cls_name} has no field {key}")
        setattr(obj, key, value)
    return obj
