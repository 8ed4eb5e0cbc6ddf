"""Running exported models: LiteRT on CPU/GPU (tiling of large images arrives with the deblur pipeline)."""

from .litert import GpuUnavailable, LiteRTModel, ensure_vulkan_icd

__all__ = ["GpuUnavailable", "LiteRTModel", "ensure_vulkan_icd"]
