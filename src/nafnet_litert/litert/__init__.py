"""LiteRT: graph facts read from the flatbuffer (:mod:`.graph`), the phone-proven op tables (:mod:`.device_ops`)
and the static audit (:mod:`.static_audit`), conversion (:mod:`.convert`), and running models on the CPU (XNNPACK)
or LiteRT's GPU accelerator (:mod:`.runtime`, :mod:`.vulkan`). Nothing here imports PyTorch except
:mod:`.convert`; names below load on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_getattr

if TYPE_CHECKING:  # the lazy names' types, for checkers and editors (never imported at run time here)
    from .runtime import GpuUnavailable, LiteRTModel, ensure_vulkan_icd
    from .vulkan import VulkanSetup, fp16_install_hint

_LAZY = {
    "GpuUnavailable": "runtime",
    "LiteRTModel": "runtime",
    "ensure_vulkan_icd": "runtime",
    "VulkanSetup": "vulkan",
    "fp16_install_hint": "vulkan",
}

__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = ["GpuUnavailable", "LiteRTModel", "VulkanSetup", "ensure_vulkan_icd", "fp16_install_hint"]  # sorted(_LAZY)
