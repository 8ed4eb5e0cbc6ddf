"""Run a LiteRT model with ``ai_edge_litert.compiled_model.CompiledModel`` on the CPU (XNNPACK) or the GPU.

The GPU path uses LiteRT's own GPU accelerator (ML Drift over WebGPU). On a machine without a GPU it runs on a
software Vulkan: Mesa 25 lavapipe (real fp16 kernels; ``scripts/install_lavapipe.sh``) or SwiftShader (fp32 only).
:func:`~.vulkan.ensure_vulkan_icd` picks one and :func:`~.vulkan.vulkan_env` points the Vulkan loader at it while a GPU
model compiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ModelFileError
from ..facts import GPU_PRECISIONS
from .sidecar import Sidecar, read_sidecar
from .vulkan import (  # noqa: F401  (re-exported: the runtime's public names)
    SWIFTSHADER_ICDS,
    VULKAN_LOADERS,
    GpuUnavailable,
    VulkanSetup,
    ensure_vulkan_icd,
    vulkan_env,
    fp16_install_hint,
)

if TYPE_CHECKING:
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.tensor_buffer import TensorBuffer

#: GPU compute precisions: "fp16" is the accelerator's default (fp16 kernels where the device has them),
#: "fp32" forces fp32 kernels (``GpuOptions(enforce_f32=True)``).


@dataclass
class ModelIO:
    layout: str  # "NCHW" or "NHWC"
    height: int
    width: int
    channels: int


def infer_io(shape: list[int] | tuple[int, ...], sidecar: Sidecar | None = None) -> ModelIO:
    """Layout and size of an image model's input ``[1,C,H,W]`` or ``[1,H,W,C]`` (C = 1 or 3); the sidecar's
    layout when it records one."""
    if len(shape) != 4 or shape[0] != 1:
        raise ModelFileError(f"expected a [1,C,H,W] or [1,H,W,C] image input, got {list(shape)}")
    layout = sidecar.layout if sidecar is not None else None
    if layout is None:
        layout = "NCHW" if shape[1] in (1, 3) and shape[3] not in (1, 3) else "NHWC"
        if shape[1] in (1, 3) and shape[3] in (1, 3):
            layout = "NCHW"
    if layout == "NCHW":
        return ModelIO("NCHW", shape[2], shape[3], shape[1])
    return ModelIO("NHWC", shape[1], shape[2], shape[3])


class LiteRTModel:
    """A compiled LiteRT image model. ``run`` takes and returns NCHW float32, whatever the model's layout.

    ``accelerator="gpu"`` runs on the GPU accelerator alone (no CPU fallback: a graph it cannot take whole fails
    to compile). ``gpu_precision`` is its compute precision: "fp16" (the default, what phones run) or "fp32"
    (``enforce_f32``). ``vulkan`` records the Vulkan driver used (see :func:`ensure_vulkan_icd`); on SwiftShader
    "fp16" still computes in fp32 (``vulkan.fp16_expected`` is False).
    """

    def __init__(
        self, path: str | Path, accelerator: str = "cpu", threads: int = 2, gpu_precision: str = "fp16"
    ) -> None:
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator
        from ai_edge_litert.options import Options

        from .graph import read_graph

        if accelerator not in ("cpu", "gpu"):
            raise ValueError(f"unknown accelerator {accelerator!r} (expected 'cpu' or 'gpu')")
        if gpu_precision not in GPU_PRECISIONS:
            raise ValueError(f"unknown gpu_precision {gpu_precision!r} (expected 'fp16' or 'fp32')")
        self.path = Path(path)
        graph = read_graph(self.path)  # validates the file before the runtime sees it
        self.sidecar = read_sidecar(self.path)
        self.accelerator = accelerator
        self.gpu_precision = gpu_precision
        self.vulkan: VulkanSetup | None = None
        self._cm: CompiledModel | None = None  # None once closed, as are the buffers
        self._ins: list[TensorBuffer] | None = None
        self._outs: list[TensorBuffer] | None = None
        in_shape = graph.tensors[graph.inputs[0]].shape
        self.io = infer_io(in_shape, self.sidecar)
        self.in_shape = tuple(in_shape)
        self.out_shape = tuple(graph.tensors[graph.outputs[0]].shape)
        try:
            if accelerator == "gpu":
                from ai_edge_litert.gpu_options import GpuOptions

                self.vulkan = ensure_vulkan_icd()
                # GPU alone: with GPU|CPU a model the GPU refuses still reports "fully accelerated".
                opts = Options(
                    hardware_accelerators=HardwareAccelerator.GPU,
                    gpu_options=GpuOptions(enforce_f32=gpu_precision == "fp32"),
                )
                with vulkan_env(self.vulkan):
                    self._cm = CompiledModel.from_file(str(self.path), options=opts)
            else:
                from ai_edge_litert.cpu_options import CpuOptions

                opts = Options(
                    hardware_accelerators=HardwareAccelerator.CPU, cpu_options=CpuOptions(num_threads=int(threads))
                )
                self._cm = CompiledModel.from_file(str(self.path), options=opts)
        except (RuntimeError, ValueError) as e:
            raise ModelFileError(f"{self.path.name}: LiteRT could not compile it for {accelerator} ({e})") from None
        self._ins = self._cm.create_input_buffers(0)
        self._outs = self._cm.create_output_buffers(0)

    def _compiled(self) -> tuple[CompiledModel, list[TensorBuffer], list[TensorBuffer]]:
        """The compiled model and its input and output buffers; ValueError once closed."""
        if self._cm is None or self._ins is None or self._outs is None:
            raise ValueError(f"{self.path.name}: the model is closed")
        return self._cm, self._ins, self._outs

    def is_fully_accelerated(self) -> bool:
        return bool(self._compiled()[0].is_fully_accelerated())

    @property
    def size(self) -> tuple[int, int]:
        return self.io.height, self.io.width

    def run(self, x: np.ndarray) -> np.ndarray:
        """``x``: float32 ``[1,C,H,W]`` at the model's size. Returns float32 ``[1,C,H,W]``."""
        cm, ins, outs = self._compiled()
        x = np.asarray(x, dtype=np.float32)
        expected = (1, self.io.channels, self.io.height, self.io.width)
        if x.shape != expected:
            raise ValueError(f"input must be {list(expected)} (NCHW), got {list(x.shape)}")
        if self.io.layout == "NHWC":
            x = x.transpose(0, 2, 3, 1)
        ins[0].write(np.ascontiguousarray(x))
        cm.run_by_index(0, ins, outs)
        y = outs[0].read(int(np.prod(self.out_shape)), np.float32).reshape(self.out_shape)
        if self.io.layout == "NHWC":
            y = y.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(y)

    def __enter__(self) -> "LiteRTModel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the compiled model and its buffers (idempotent); ``run`` afterwards is an error."""
        cm = getattr(self, "_cm", None)
        if cm is not None and hasattr(cm, "close"):
            cm.close()
        self._cm = self._ins = self._outs = None
