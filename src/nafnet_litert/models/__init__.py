"""Network definitions: the reference NAFNet (megvii semantics) and its deploy rewrites.

The configuration (:mod:`.config`) is plain data and imports nothing heavy; the network (:mod:`.reference`) loads
PyTorch, so it is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_getattr

from .config import PRESETS, NAFNetConfig, SizeRule, preset_name

if TYPE_CHECKING:
    from .reference import NAFNet, build_reference

__getattr__ = lazy_getattr(__name__, {"NAFNet": "reference", "build_reference": "reference"})


__all__ = ["NAFNet", "NAFNetConfig", "PRESETS", "SizeRule", "build_reference", "preset_name"]
