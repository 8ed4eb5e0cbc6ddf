"""Running LiteRT models on the CPU (XNNPACK) or LiteRT's GPU accelerator. Imports without PyTorch."""

from .litert import GpuUnavailable, LiteRTModel, ensure_vulkan_icd
from .vulkan import VulkanSetup, fp16_install_hint

__all__ = ["GpuUnavailable", "LiteRTModel", "VulkanSetup", "ensure_vulkan_icd", "fp16_install_hint"]
