"""Running models: LiteRT on CPU/GPU, and restorers (image in, restored image out) for every backend.

The LiteRT runtime (:mod:`.litert`, :mod:`.vulkan`) imports without PyTorch; the restorers, which can run the
PyTorch reference, are loaded on first use.
"""

from .litert import GpuUnavailable, LiteRTModel, ensure_vulkan_icd
from .vulkan import VulkanSetup, fp16_install_hint

_RESTORE = ("LiteRTExportRestorer", "LiteRTFileRestorer", "TorchRestorer", "make_restorer")


def __getattr__(name: str):
    if name in _RESTORE:
        from . import restore

        return getattr(restore, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
