"""Running models: LiteRT on CPU/GPU, and restorers (image in, restored image out) for every backend."""

from .litert import GpuUnavailable, LiteRTModel, ensure_vulkan_icd
from .restore import LiteRTExportRestorer, LiteRTFileRestorer, TorchRestorer, make_restorer

__all__ = [
    "GpuUnavailable",
    "LiteRTExportRestorer",
    "LiteRTFileRestorer",
    "LiteRTModel",
    "TorchRestorer",
    "ensure_vulkan_icd",
    "make_restorer",
]
