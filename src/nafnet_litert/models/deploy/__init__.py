"""Deploy rewrites: explicit transforms of a built reference NAFNet into the exported form.

Each rewrite is its own module whose docstring says why it is exact:

* :mod:`.layernorm` — fp16-safe channel LayerNorm (statistics on x/S, kept in the scaled domain);
* :mod:`.pooling` — channel-attention pooling as two single-axis means;
* :mod:`.upsample` — PixelShuffle upsampler in the phone-proven zero-stuff form (nearest resize read on its grid).

The exported default adds :mod:`.lean` (constant scales and affines folded into convolutions) and
:mod:`.native_ops` (one SPLIT per gate, DEPTH_TO_SPACE upsamplers); :mod:`.tlc_pool` is the optional TLC form.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import cast

from ..reference import LayerNorm2d, NAFNet, Upsample
from ..tlc import block_levels
from .layernorm import DEFAULT_SCALE, ScaledLayerNorm2d
from .pooling import DEFAULT_POOL_SCALE, SeparableGlobalMean
from .upsample import ZeroStuffUpsample

__all__ = [
    "DEFAULT_POOL_SCALE", "DEFAULT_SCALE", "ScaledLayerNorm2d", "SeparableGlobalMean", "ZeroStuffUpsample",
    "DeployedNAFNet", "level_scales", "to_deploy",
]  # fmt: skip


class DeployedNAFNet(NAFNet):
    """A NAFNet after :func:`to_deploy`: the same modules with the rewrites in place, plus the plan they follow,
    as typed fields that :func:`~.lean.to_lean` and the exporter read (never looked up by name)."""

    #: The LayerNorm statistics scale of each level (0 = full resolution .. the bottleneck).
    level_scales: list[float]
    #: The scale of the channel-attention pooling's means.
    pool_scale: float

    @classmethod
    def copy_of(cls, model: NAFNet, level_scales: list[float], pool_scale: float) -> "DeployedNAFNet":
        """A deep copy of ``model`` (its modules and weights) typed as a deployed network with this plan."""
        deploy = cast(DeployedNAFNet, copy.deepcopy(model).eval())  # what it becomes on the next line
        deploy.__class__ = cls  # same state, same forward: only the type and the plan fields are added
        deploy.level_scales = list(level_scales)
        deploy.pool_scale = float(pool_scale)
        return deploy


def level_scales(model: NAFNet, scale: float | Sequence[float] | str) -> list[float]:
    """Per-level LayerNorm scales: ``"auto"`` calibrates them on real photos (:mod:`.calibrate`), a number is used
    at every level, a sequence gives one per level (0 = full resolution .. the bottleneck)."""
    levels = len(model.encoders) + 1
    if isinstance(scale, str):
        if scale != "auto":
            raise ValueError(f"scale must be 'auto', a number or one number per level, got {scale!r}")
        from .calibrate import calibrate_scales

        return calibrate_scales(model)
    if isinstance(scale, (int, float)):
        values = [float(scale)] * levels
    else:
        values = [float(v) for v in scale]
        if len(values) != levels:
            raise ValueError(f"this network has {levels} levels, got {len(values)} scales")
    if any(v <= 0 for v in values):
        raise ValueError(f"scales must be positive, got {values}")
    return values


def to_deploy(
    model: NAFNet, scale: float | Sequence[float] | str = DEFAULT_SCALE, pool_scale: float = DEFAULT_POOL_SCALE
) -> DeployedNAFNet:
    """Return a deep copy of ``model`` with all three rewrites applied (the input model is left untouched).

    ``scale``: the LayerNorm statistics scale, per level (see :func:`level_scales`); ``pool_scale``: the scale of
    the channel-attention pooling's means. Both are kept as the result's :class:`DeployedNAFNet` fields."""
    scales = level_scales(model, scale)
    deploy = DeployedNAFNet.copy_of(model, scales, pool_scale)
    for level, block in block_levels(deploy):
        assert isinstance(block.norm1, LayerNorm2d) and isinstance(block.norm2, LayerNorm2d)
        block.norm1 = ScaledLayerNorm2d.from_reference(block.norm1, scales[level])
        block.norm2 = ScaledLayerNorm2d.from_reference(block.norm2, scales[level])
        block.sca[0] = SeparableGlobalMean(pool_scale)
    for i, up in enumerate(deploy.ups):
        assert isinstance(up, Upsample)
        deploy.ups[i] = ZeroStuffUpsample.from_reference(up)
    if any(isinstance(m, LayerNorm2d) for m in deploy.modules()):  # pragma: no cover - guards future edits
        raise RuntimeError("to_deploy left a reference LayerNorm2d in place")
    return deploy
