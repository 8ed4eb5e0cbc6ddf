"""Running models: LiteRT on CPU/GPU, and restorers (image in, restored image out) for every backend."""

from .litert import GpuUnavailable, LiteRTModel, ensure_vulkan_icd
from .restore import LiteRTExportRestorer, LiteRTFileRestorer, TorchRestorer, make_restorer
from .vulkan import VulkanSetup, fp16_install_hint

__all__ = [
    "GpuUnavailable",
    "VulkanSetup",
    "fp16_install_hint",
    "LiteRTExportRestorer",
    "LiteRTFileRestorer",
    "LiteRTModel",
    "TorchRestorer",
    "ensure_vulkan_icd",
    "make_restorer",
]
