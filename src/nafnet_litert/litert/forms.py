"""Op *forms* a phone GPU is documented to get wrong, found on the .tflite graph itself (no PyTorch, no sidecar).

A proven op in an unproven form is unproven. The forms checked here (each a :data:`~.device_ops.FORM_REJECTIONS`
entry, with its reason and source):

* ``RESIZE_NEAREST_OFF_GRID`` — a RESIZE_NEAREST_NEIGHBOR whose values are read at positions that are not on the
  stride grid. Mali computes a nearest resize differently off the grid (litert-samples PR #167: corr 0.57 on a
  Pixel 8a, exact on desktop), and every published phone upsampler (the zero-stuff ConvTranspose of NAFNet, EDSR,
  TwinLiteNet, Metric3D) multiplies the resized tensor by a mask that is 1 only at ``[::s, ::s]``. Two checks:

  - **static** (:func:`nearest_reads`): every resize output reaches the rest of the graph only through channel
    SLICEs (full H and W) and then MULs by constants (possibly behind a DEQUANTIZE) whose product is zero at every
    off-grid position of the resized tensor. Any other op that reads it while it still holds off-grid values
    (an ADD after a parity mask, a graph output, a MUL by a runtime tensor) is a violation, reported by node
    index.
  - **dynamic** (:func:`perturb_nearest`): the file, rewritten so that every nearest resize maps many off-grid
    positions to another input pixel (``align_corners`` and ``half_pixel_centers`` both set: on-grid positions
    still map to the same pixel), must give bit-identical output on the CPU. The host GPU cannot show this failure
    (lavapipe and SwiftShader compute the off-grid values exactly), so the CPU is the place to provoke it.
* ``RESIZE_BILINEAR_ALIGN_HALF_PIXEL`` — a bilinear resize with ``align_corners`` and ``half_pixel_centers`` both
  set (read from its builtin options).
* ``OUTPUT_ADD_CONSUMED`` — an ADD of two runtime tensors whose result is a graph output and is also read by another
  op (LiteRT#8599: the output holds an operand, not the sum).
* ``DIV_SAME_INPUTS``, ``REDUCE_MAX_CONST_INPUTS``, ``MEAN_MULTI_AXIS`` — see :mod:`.device_ops`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .graph import Graph

OFF_GRID = "RESIZE_NEAREST_OFF_GRID"


@dataclass
class NearestRead:
    """One RESIZE_NEAREST_NEIGHBOR: its node index, integer stride, and the nodes that read it off the grid."""

    node: int
    stride: tuple[int, int] | None
    offending: list[int] = field(default_factory=list)
    reason: str = ""

    @property
    def on_grid(self) -> bool:
        return not self.reason


def _consumers(g: Graph) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for k, op in enumerate(g.ops):
        for t in op.inputs:
            if t >= 0:
                out.setdefault(t, []).append(k)
    return out


def _producers(g: Graph) -> dict[int, int]:
    return {t: k for k, op in enumerate(g.ops) for t in op.outputs}


def constant(g: Graph, tensor: int, producers: dict[int, int] | None = None):
    """The value of a constant tensor, also behind a DEQUANTIZE (fp16 or int8 weights); None for a runtime one."""
    v = g.const_value(tensor)
    if v is not None:
        return np.asarray(v, np.float32) if v.dtype.kind == "f" else v
    producers = _producers(g) if producers is None else producers
    k = producers.get(tensor)
    if k is not None and g.ops[k].name == "DEQUANTIZE":
        v = g.const_value(g.ops[k].inputs[0])
        if v is not None and v.dtype.kind == "f":
            return np.asarray(v, np.float32)
    return None


def resize_flags(g: Graph, node: int) -> tuple[bool, bool]:
    """(align_corners, half_pixel_centers) of a RESIZE_NEAREST_NEIGHBOR or RESIZE_BILINEAR node."""
    from ai_edge_litert import schema_py_generated as schema

    subgraph = schema.Model.GetRootAsModel(g.raw, 0).Subgraphs(0)
    op = subgraph.Operators(node) if subgraph is not None else None
    if op is None:
        raise ValueError(f"the model has no operator {node} in its first subgraph")
    table = op.BuiltinOptions()
    if table is None:
        return False, False
    bilinear = g.ops[node].name == "RESIZE_BILINEAR"
    opts = schema.ResizeBilinearOptions() if bilinear else schema.ResizeNearestNeighborOptions()
    opts.Init(table.Bytes, table.Pos)
    return bool(opts.AlignCorners()), bool(opts.HalfPixelCenters())


def zero_off_grid(mask: np.ndarray, out_shape: tuple[int, ...], stride: tuple[int, int]) -> bool:
    """Is ``mask``, broadcast against an NHWC ``out_shape``, zero wherever row % sh or col % sw is not 0?"""
    m = np.asarray(mask, np.float32)
    if m.ndim > 4:
        return False
    m = m.reshape((1,) * (4 - m.ndim) + m.shape)
    _, h, w, _ = out_shape
    try:
        b = np.broadcast_to(m, (m.shape[0], h, w, m.shape[3]))
    except ValueError:
        return False
    sh, sw = stride
    off_rows = np.arange(h) % sh != 0
    off_cols = np.arange(w) % sw != 0
    return not b[:, off_rows].any() and not b[:, :, off_cols].any()


def mask_product(acc: np.ndarray | None, mask: np.ndarray) -> np.ndarray | None:
    """The product of the masks met so far (rank 4, broadcast), or None when they do not broadcast."""
    m = np.asarray(mask, np.float32)
    if m.ndim > 4:
        return None
    m = m.reshape((1,) * (4 - m.ndim) + m.shape)
    if acc is None:
        return m
    try:
        return acc * m
    except ValueError:
        return None


def _channel_slice(g: Graph, op, producers) -> bool:
    """A SLICE that keeps the whole of H and W (NHWC): begin 0 on axes 1-2 and the same spatial size."""
    if op.name != "SLICE" or len(op.inputs) < 3:
        return False
    begin = constant(g, op.inputs[1], producers)
    src, dst = g.tensors[op.inputs[0]].shape, g.tensors[op.outputs[0]].shape
    if begin is None or len(src) != 4 or len(dst) != 4:
        return False
    return int(begin[1]) == 0 and int(begin[2]) == 0 and tuple(src[1:3]) == tuple(dst[1:3])


def nearest_reads(g: Graph) -> list[NearestRead]:
    """Every RESIZE_NEAREST_NEIGHBOR of ``g`` and how its output is read (see the module docstring)."""
    consumers, producers = _consumers(g), _producers(g)
    outputs = set(g.outputs)
    found = []
    for k, op in enumerate(g.ops):
        if op.name != "RESIZE_NEAREST_NEIGHBOR":
            continue
        src, dst = g.tensors[op.inputs[0]].shape, g.tensors[op.outputs[0]].shape
        if len(src) != 4 or len(dst) != 4 or dst[1] % src[1] or dst[2] % src[2]:
            found.append(NearestRead(k, None, [k], f"not an integer upscale ({list(src)} -> {list(dst)})"))
            continue
        stride = (dst[1] // src[1], dst[2] // src[2])
        read = NearestRead(k, stride)
        if stride == (1, 1):
            found.append(read)
            continue
        if resize_flags(g, k)[0]:  # half_pixel_centers alone keeps an integer upscale's grid: floor((y + .5) / s)
            read.offending.append(k)
            read.reason = "align_corners set: even the grid maps elsewhere"
        todo: list[tuple[int, np.ndarray | None]] = [(op.outputs[0], None)]  # (tensor, product of masks so far)
        while todo:
            t, acc = todo.pop()
            if t in outputs:
                read.offending.append(k)
                read.reason = read.reason or "a graph output holds the resized values"
            for c in consumers.get(t, []):
                cop = g.ops[c]
                if acc is None and _channel_slice(g, cop, producers):
                    todo.append((cop.outputs[0], None))
                    continue
                if cop.name == "MUL" and len(cop.inputs) == 2:
                    other = cop.inputs[1] if cop.inputs[0] == t else cop.inputs[0]
                    mask = constant(g, other, producers)
                    if mask is not None:
                        prod = mask_product(acc, mask)
                        if prod is not None and zero_off_grid(prod, g.tensors[cop.outputs[0]].shape, stride):
                            continue  # zero-stuffed: only on-grid values go on
                        if prod is not None:  # one factor of the mask (rows, then columns): follow the product
                            todo.append((cop.outputs[0], prod))
                            continue
                if c not in read.offending:
                    read.offending.append(c)
                read.reason = read.reason or (
                    f"read by {cop.name} while off-grid values are still in it"
                    if acc is not None
                    else f"read by {cop.name} before any on-grid mask"
                )
        found.append(read)
    return found


def perturb_nearest(model: bytes) -> tuple[bytes, int]:
    """The same flatbuffer with ``align_corners`` and ``half_pixel_centers`` set on every nearest resize, and how
    many it changed. For a 2x resize of an axis of length n, TFLite then reads ``round((y + 0.5)(n-1)/(2n-1))``:
    the same pixel for every even y (on the grid), the next one for most odd y in the first half of the axis."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    obj = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in obj.operatorCodes or []]
    changed = 0
    for sg in obj.subgraphs or []:
        for op in sg.operators or []:
            if codes[op.opcodeIndex] != schema.BuiltinOperator.RESIZE_NEAREST_NEIGHBOR:
                continue
            opts = schema.ResizeNearestNeighborOptionsT()
            opts.alignCorners, opts.halfPixelCenters = True, True
            op.builtinOptionsType = schema.BuiltinOptions.ResizeNearestNeighborOptions
            op.builtinOptions = opts
            changed += 1
    # flatbuffer_utils' Packable protocol misdeclares InitFromObj (named parameter, None result), so no ModelT fits
    return bytes(flatbuffer_utils.convert_object_to_bytearray(obj)), changed  # pyright: ignore[reportArgumentType]




def _spatial_slice(g: Graph, k: int, producers) -> bool:
    op = g.ops[k]
    if op.name not in ("SLICE", "STRIDED_SLICE") or len(op.inputs) < 2:
        return False
    begin = constant(g, op.inputs[1], producers)
    return begin is not None and np.asarray(begin).size == 4 and (int(begin[1]) != 0 or int(begin[2]) != 0)


def _one_axis_broadcast(g: Graph, k: int, producers) -> bool:
    """An elementwise op whose runtime operand is broadcast over exactly one of H and W (NHWC)."""
    op = g.ops[k]
    if op.name not in ("ADD", "SUB", "MUL") or len(op.inputs) != 2:
        return False
    if any(constant(g, t, producers) is not None for t in op.inputs):
        return False
    out = g.tensors[op.outputs[0]].shape
    for t in op.inputs:
        s = g.tensors[t].shape
        if len(s) == 4 and len(out) == 4 and (s[1] == 1) != (s[2] == 1) and (out[1] > 1 and out[2] > 1):
            return True
    return False


def unproven_forms(g: Graph) -> dict[str, list[int]]:
    """Forms of :data:`~.device_ops.FORMS` that no published phone graph contains, found in ``g``: {form: nodes}."""
    producers = _producers(g)
    found: dict[str, list[int]] = {}
    for k, op in enumerate(g.ops):
        if op.name == "DEQUANTIZE" and g.tensors[op.inputs[0]].dtype in ("INT8", "UINT8"):
            found.setdefault("int8_dequantize", []).append(k)
        elif _spatial_slice(g, k, producers):
            found.setdefault("tlc_box_mean_slices", []).append(k)
        elif _one_axis_broadcast(g, k, producers):
            found.setdefault("tlc_edge_broadcast", []).append(k)
    return found


def _output_add_consumed(g: Graph, k: int, outputs: set[int], consumers, producers) -> bool:
    """An ADD of two runtime tensors whose result is a graph output and also an input of another op (LiteRT#8599:
    the output then holds an operand; an ADD of a constant is exact there, so it is not this form)."""
    op = g.ops[k]
    if op.name != "ADD" or len(op.inputs) != 2 or not op.outputs or op.outputs[0] not in outputs:
        return False
    if any(constant(g, t, producers) is not None for t in op.inputs):
        return False
    return any(c != k for c in consumers.get(op.outputs[0], []))


def rejected_forms(g: Graph, reads: list[NearestRead] | None = None) -> dict[str, list[int]]:
    """Every :data:`~.device_ops.FORM_REJECTIONS` form in ``g`` except ranks (the rank check's): {form: nodes}.
    For ``RESIZE_NEAREST_OFF_GRID`` the nodes are the resizes and the ops that read them off the grid."""
    found: dict[str, list[int]] = {}
    consumers, producers, outputs = _consumers(g), _producers(g), set(g.outputs)
    for k, op in enumerate(g.ops):
        if op.name == "RESIZE_BILINEAR" and all(resize_flags(g, k)):
            found.setdefault("RESIZE_BILINEAR_ALIGN_HALF_PIXEL", []).append(k)
        elif _output_add_consumed(g, k, outputs, consumers, producers):
            found.setdefault("OUTPUT_ADD_CONSUMED", []).append(k)
        elif op.name == "DIV" and len(op.inputs) >= 2 and op.inputs[0] == op.inputs[1]:
            found.setdefault("DIV_SAME_INPUTS", []).append(k)
        elif op.name == "REDUCE_MAX" and len(op.inputs) >= 2 and all(
            g.tensors[i].buffer and g.const_value(i) is not None for i in op.inputs[:2]
        ):
            found.setdefault("REDUCE_MAX_CONST_INPUTS", []).append(k)
        elif op.name == "MEAN" and len(op.inputs) >= 2:
            axes = g.const_value(op.inputs[1])
            if axes is None or np.asarray(axes).size > 1:
                found.setdefault("MEAN_MULTI_AXIS", []).append(k)
    for r in nearest_reads(g) if reads is None else reads:
        if not r.on_grid:
            nodes = found.setdefault(OFF_GRID, [])
            nodes.extend(n for n in [r.node, *r.offending] if n not in nodes)
    return found


__all__ = [
    "OFF_GRID", "NearestRead", "constant", "nearest_reads", "perturb_nearest", "rejected_forms", "resize_flags",
    "unproven_forms",
]  # fmt: skip
