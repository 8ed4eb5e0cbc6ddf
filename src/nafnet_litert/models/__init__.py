"""Network definitions: the reference NAFNet (megvii semantics) and its deploy rewrites.

The configuration (:mod:`.config`) is plain data and imports nothing heavy; the network (:mod:`.reference`) loads
PyTorch, so it is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import PRESETS, NAFNetConfig, SizeRule, preset_name

if TYPE_CHECKING:
    from .reference import NAFNet, build_reference


def __getattr__(name: str):
    if name in ("NAFNet", "build_reference"):
        from . import reference

        return getattr(reference, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["NAFNet", "NAFNetConfig", "PRESETS", "SizeRule", "build_reference", "preset_name"]
