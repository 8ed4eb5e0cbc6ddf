"""Rewrite (e): two single TFLite ops the converter cannot find on its own — SPLIT and DEPTH_TO_SPACE.

litert-torch lowers ``x.chunk(2, dim=1)`` to two SLICEs, and PixelShuffle either to rank-6 reshapes or (our
:mod:`.upsample` form) to a zero-stuffed 2x2 convolution. TFLite has one op for each: SPLIT and
DEPTH_TO_SPACE, both rank 4, both in the LiteRT GPU accelerator (checked by the audit's GPU run). This module
defines them as PyTorch custom ops with exact eager implementations (pure data movement: reshape, permute, copy),
and :func:`register_litert` teaches litert-torch to emit them:

* a **lowering** to the TFLite op (litert-torch's ``tfl.*`` custom-call carrier), and
* a **layout rewriter**, so its pass that turns the NCHW graph into channel-last keeps these ops channel-last
  (SPLIT's axis 1 becomes 3; the NCHW depth-to-space becomes TFLite's NHWC one) instead of wrapping them in
  TRANSPOSEs.

Channel order. TFLite's DEPTH_TO_SPACE (NHWC) reads output ``[h*r+i, w*r+j, c]`` from input channel
``(i*r+j)*C + c``; PixelShuffle (NCHW) reads output ``[c, h*r+i, w*r+j]`` from channel ``c*r*r + i*r + j``. The
two differ only by a fixed permutation of input channels, which :func:`.upsample.subpixel_rows` applies to the
rows of the 1x1 convolution in front (reordering weights is exact). So ``conv + DEPTH_TO_SPACE`` is
bit-identical to ``conv + PixelShuffle``, as SPLIT is to ``chunk``.
"""

from __future__ import annotations

import threading
from typing import cast

import numpy as np
import torch


# --------------------------------------------------------------------------------------------- the custom ops


@torch.library.custom_op("nafnet_litert::channel_halves", mutates_args=())
def channel_halves(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``x.chunk(2, dim)`` of an even-sized axis as one op (TFLite SPLIT); returns copies."""
    if x.shape[dim] % 2:
        raise ValueError(f"channel_halves needs an even size along dim {dim}, got {x.shape[dim]}")
    a, b = x.chunk(2, dim)
    return a.clone(), b.clone()


@channel_halves.register_fake
def _channel_halves_fake(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = x.chunk(2, dim)
    return x.new_empty(a.shape), x.new_empty(b.shape)


@torch.library.custom_op("nafnet_litert::depth_to_space", mutates_args=())
def depth_to_space(x: torch.Tensor, block: int) -> torch.Tensor:
    """NCHW depth-to-space in TFLite's channel order: ``out[n, c, h*r+i, w*r+j] = x[n, (i*r+j)*C + c, h, w]``."""
    n, crr, h, w = x.shape
    r = block
    c = crr // (r * r)
    return x.reshape(n, r, r, c, h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, c, h * r, w * r).clone()


@depth_to_space.register_fake
def _depth_to_space_fake(x: torch.Tensor, block: int) -> torch.Tensor:
    n, crr, h, w = x.shape
    return x.new_empty((n, crr // (block * block), h * block, w * block))


@torch.library.custom_op("nafnet_litert::depth_to_space_nhwc", mutates_args=())
def depth_to_space_nhwc(x: torch.Tensor, block: int) -> torch.Tensor:
    """TFLite's DEPTH_TO_SPACE on NHWC: ``out[n, h*r+i, w*r+j, c] = x[n, h, w, (i*r+j)*C + c]``."""
    n, h, w, crr = x.shape
    r = block
    c = crr // (r * r)
    return x.reshape(n, h, w, r, r, c).permute(0, 1, 3, 2, 4, 5).reshape(n, h * r, w * r, c).clone()


@depth_to_space_nhwc.register_fake
def _depth_to_space_nhwc_fake(x: torch.Tensor, block: int) -> torch.Tensor:
    n, h, w, crr = x.shape
    return x.new_empty((n, h * block, w * block, crr // (block * block)))


# ------------------------------------------------------------------------------------ teaching litert-torch

_registered = False
_lock = threading.Lock()
_NCHW_TO_NHWC_AXIS = {0: 0, 1: 3, 2: 1, 3: 2}


def register_litert() -> None:
    """Register the lowerings and layout rewriters with litert-torch (idempotent; imports litert-torch)."""
    global _registered
    with _lock:
        if _registered:
            return
        from litert_converter.mlir import ir
        # litert-torch's extension points for custom lowerings are not public API yet (pinned to 0.10.x)
        from litert_torch._convert.fx_passes.optimize_layout_transposes_pass import layout_rewrite  # noqa: PLC2701
        from litert_torch.backend.experimental.torch_tfl._lowerings import _ir_operation  # noqa: PLC2701
        from litert_torch.backend.lowerings import registry
        from litert_torch.backend.lowerings import utils as lowering_utils

        ops = torch.ops.nafnet_litert

        def i32(v: int):
            # the MLIR bindings are a compiled extension that ir.py star-imports, without stubs
            return ir.IntegerAttr.get(ir.IntegerType.get_signless(32), int(v))  # pyright: ignore[reportAttributeAccessIssue]

        @layout_rewrite.rewriters.register(ops.channel_halves.default)
        def _halves_nhwc(node: torch.fx.Node) -> None:
            x, dim = node.args
            node.args = (x, _NCHW_TO_NHWC_AXIS[cast(int, dim) % 4])  # channel_halves(x, dim: int)

        # registry.lower annotates its argument Callable[[LoweringContext, ...], Any], which is not valid typing
        # (pyright reads two parameters); lowerings take the op's arguments after the context
        @registry.lower(ops.channel_halves.default)  # pyright: ignore[reportArgumentType]
        def _halves_lowering(lctx, x, dim: int):
            axis = lowering_utils.numpy_array_constant(np.array(dim, dtype=np.int32))
            types = lowering_utils.node_meta_to_ir_types(lctx.node)
            return _ir_operation("tfl.split", results=types, operands=[axis, x], attributes={"num_splits": i32(2)})

        @layout_rewrite.rewriters.register(ops.depth_to_space.default)
        def _d2s_nhwc(node: torch.fx.Node) -> None:
            node.target = ops.depth_to_space_nhwc.default

        @registry.lower(ops.depth_to_space_nhwc.default)  # pyright: ignore[reportArgumentType]
        def _d2s_lowering(lctx, x, block: int):
            types = lowering_utils.node_meta_to_ir_types(lctx.node)
            return _ir_operation("tfl.depth_to_space", results=types, operands=[x], attributes={"block_size": i32(block)})

        _registered = True
