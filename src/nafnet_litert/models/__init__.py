"""Network definitions: the reference NAFNet (megvii semantics) and its deploy rewrites."""

from .config import PRESETS, NAFNetConfig, preset_name
from .reference import NAFNet, build_reference

__all__ = ["NAFNet", "NAFNetConfig", "PRESETS", "build_reference", "preset_name"]
