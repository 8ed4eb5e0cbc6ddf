"""Restorers: one callable interface, float32 H x W x C in [0, 1] in -> restored H x W x C out, for every way the
project can run a model (PyTorch reference, LiteRT exported at the image's own size, a given .tflite file).

Padding follows the reference network (zeros at the bottom/right up to a multiple of 16, cropped back), so a
LiteRT restorer computes exactly what the PyTorch one does.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import Checkpoint
from ..errors import NafnetLitertError
from ..images import from_nchw, pad_to_multiple, to_nchw
from ..threads import torch_threads


class TorchRestorer:
    """The PyTorch reference network (``deploy=True``: the deploy rewrites, same numbers up to ~1e-6)."""

    def __init__(self, ckpt: Checkpoint, threads: int | None = None, deploy: bool = False) -> None:
        from ..model.deploy import to_deploy

        self.threads = threads  # applied per call and restored after (the setting is process-wide)
        net = ckpt.build_reference()
        self.net = to_deploy(net) if deploy else net
        self.name = f"PyTorch ({'deploy' if deploy else 'reference'})"

    def __call__(self, img: np.ndarray) -> np.ndarray:
        with torch_threads(self.threads), torch.inference_mode():
            return from_nchw(self.net(torch.from_numpy(to_nchw(img))).numpy())


class LiteRTFileRestorer:
    """A given .tflite: run directly when the image has the model's size, else in overlapping tiles
    (:mod:`.tiling`, the deblur pipeline's defaults) — which needs a square model."""

    def __init__(self, path: str | Path, accelerator: str = "cpu", threads: int = 2) -> None:
        from .litert import LiteRTModel

        self.model = LiteRTModel(path, accelerator, threads)
        self.name = f"LiteRT {accelerator.upper()} ({Path(path).name})"

    def __call__(self, img: np.ndarray) -> np.ndarray:
        h, w = self.model.size
        if img.shape[:2] == (h, w):
            return from_nchw(self.model.run(to_nchw(img)))
        if h != w:
            raise NafnetLitertError(
                f"image is {img.shape[0]}x{img.shape[1]} but the model takes {h}x{w} and is not square, so it "
                "cannot tile; export one at this size (or pass the checkpoint, exported at each image's size)"
            )
        from .tiling import DEFAULT_OVERLAP
        from .tiling import tiled_restore

        run = lambda batch: np.concatenate([self.model.run(b[None]) for b in batch])  # noqa: E731
        return tiled_restore(img, run, h, min(DEFAULT_OVERLAP, h // 2))


class LiteRTExportRestorer:
    """Exports the checkpoint with LiteRT at each new (padded) image size, caches it, and runs it on the CPU."""

    def __init__(
        self, ckpt: Checkpoint, precision: str = "fp16", accelerator: str = "cpu", threads: int = 2
    ) -> None:
        self.ckpt = ckpt
        self.precision = precision
        self.accelerator = accelerator
        self.threads = threads
        self._tmp = tempfile.TemporaryDirectory(prefix="nafnet-litert-")
        self._models: dict[tuple[int, int], object] = {}
        self.name = f"LiteRT {accelerator.upper()} {precision} (exported at the image size)"

    def model_for(self, size: tuple[int, int]):
        from ..export import export
        from .litert import LiteRTModel

        if size not in self._models:
            path = Path(self._tmp.name) / f"m_{size[0]}x{size[1]}_{self.precision}.tflite"
            export(self.ckpt, path, size, self.precision)
            self._models[size] = LiteRTModel(path, self.accelerator, self.threads)
        return self._models[size]

    def __call__(self, img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        padded = pad_to_multiple(img, self.ckpt.config.padder_size)
        model = self.model_for(padded.shape[:2])
        return from_nchw(model.run(to_nchw(padded)))[:h, :w]


def make_restorer(model: str, backend: str = "torch", precision: str = "fp16", threads: int = 2, gpu: bool = False):
    """``model``: ``default``, a checkpoint, ``random:PRESET`` or a ``.tflite`` file; ``backend``: torch|litert."""
    from ..checkpoint import resolve_checkpoint

    accelerator = "gpu" if gpu else "cpu"
    if str(model).endswith(".tflite"):
        return LiteRTFileRestorer(model, accelerator, threads)
    ckpt = resolve_checkpoint(model)
    if backend == "torch":
        return TorchRestorer(ckpt, threads)
    if backend == "litert":
        return LiteRTExportRestorer(ckpt, precision, accelerator, threads)
    raise NafnetLitertError(f"unknown backend {backend!r} (choose torch or litert)")
