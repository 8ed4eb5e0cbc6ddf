"""Deploy rewrites: explicit transforms of a built reference NAFNet into the exported form.

Each rewrite is its own module whose docstring says why it is exact:

* :mod:`.layernorm` — fp16-safe channel LayerNorm (statistics on x/S, kept in the scaled domain);
* :mod:`.pooling` — channel-attention pooling as two single-axis means;
* :mod:`.upsample` — PixelShuffle upsampler as SLICE/RESIZE_NEAREST/MUL/ADD (rank 4, no layout shuffles).

The exported default adds :mod:`.lean` (constant scales and affines folded into convolutions) and
:mod:`.native_ops` (one SPLIT per gate, DEPTH_TO_SPACE upsamplers); :mod:`.tlc_pool` is the optional TLC form.
"""

from __future__ import annotations

import copy

from ..reference import LayerNorm2d, NAFBlock, NAFNet, Upsample
from .layernorm import DEFAULT_SCALE, ScaledLayerNorm2d
from .pooling import SeparableGlobalMean
from .upsample import InterleaveUpsample

__all__ = ["DEFAULT_SCALE", "InterleaveUpsample", "ScaledLayerNorm2d", "SeparableGlobalMean", "to_deploy"]


def to_deploy(model: NAFNet, scale: float = DEFAULT_SCALE) -> NAFNet:
    """Return a deep copy of ``model`` with all three rewrites applied (the input model is left untouched)."""
    deploy = copy.deepcopy(model).eval()
    for block in deploy.modules():
        if isinstance(block, NAFBlock):
            block.norm1 = ScaledLayerNorm2d.from_reference(block.norm1, scale)
            block.norm2 = ScaledLayerNorm2d.from_reference(block.norm2, scale)
            block.sca[0] = SeparableGlobalMean(scale)
    for i, up in enumerate(deploy.ups):
        assert isinstance(up, Upsample)
        deploy.ups[i] = InterleaveUpsample.from_reference(up)
    if any(isinstance(m, LayerNorm2d) for m in deploy.modules()):  # pragma: no cover - guards future edits
        raise RuntimeError("to_deploy left a reference LayerNorm2d in place")
    return deploy
