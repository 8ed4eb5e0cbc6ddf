"""nafnet-litert: exact, phone-GPU-clean LiteRT exports of NAFNet checkpoints, and an audit that proves it.

The public surface, in one screen::

    import nafnet_litert as nl

    nl.deblur("photo.jpg", "sharp.jpg")       # a photo, folder or video; 16-bit, gray, alpha, EXIF/ICC kept
    nl.deblur("in/", "out/", options=nl.RestoreOptions(tile=128, gpu=True), compare=True)

    with nl.Restorer("default") as restore:   # LiteRT, 256 px tiles; full_frame=True, backend="torch", gpu=True, ...
        sharp = restore(blurry)                # numpy (uint8/uint16/float, gray/RGB/RGBA) or PIL: same type back

    ck = nl.load("default")                    # a .pth/.safetensors path, "default", "random:GoPro-width32", "stress:..."
    res = nl.export(ck, "model.tflite", size=256, precision="fp16")
    report = nl.audit("model.tflite", ck, ["photo.png"], gpu=True, fp16=True)
    print(report.format_text()); assert report.passed

Everything else lives in the subpackages. Importing this package is light: PyTorch and LiteRT load on first use.
"""

from __future__ import annotations

from importlib import metadata as _metadata
from typing import TYPE_CHECKING as _TYPE_CHECKING

if _TYPE_CHECKING:  # the lazy names' types, for checkers and editors: the facade imports nothing heavy until used
    from pathlib import Path

    from .errors import (
        AuditFailed,
        CheckpointError,
        DataError,
        DatasetError,
        EvalError,
        ExportError,
        GpuUnavailable,
        ImageError,
        ModelFileError,
        NafnetLitertError,
        OutputError,
        ProfileError,
        TrainError,
        WebError,
    )
    from .eval.evaluate import EvalResult
    from .io.image import load_image, save_image
    from .io.image import read_photo as read_image
    from .io.image import write_photo as write_image
    from .litert.convert import ExportResult
    from .models.checkpoint import Checkpoint
    from .photo import Photo
    from .restore.batch import RunStats
    from .restore.restorer import Restorer, RestoreOptions
    from .train.options import TrainOptions
    from .train.trainer import TrainResult
    from .verify.audit import AuditReport

try:
    __version__ = _metadata.version("nafnet-litert")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
    __version__ = "0+unknown"


def load(spec: str | Path) -> Checkpoint:
    """A checkpoint from a path, ``default`` (the bundled model), ``random:PRESET[@SEED]`` or ``stress:SPEC``
    (:func:`nafnet_litert.models.checkpoint.resolve_checkpoint`)."""
    from .models.checkpoint import resolve_checkpoint

    return resolve_checkpoint(spec)


def export(ckpt: Checkpoint | str, output, **options) -> ExportResult:
    """Export a checkpoint (or a spec for :func:`load`) to a .tflite with its sidecar JSON
    (:func:`nafnet_litert.litert.convert.export`: ``size``, ``precision``, ``layout``, ``tlc``, ``scale``, ...)."""
    from .litert.convert import export as _export

    return _export(load(ckpt) if isinstance(ckpt, str) else ckpt, output, **options)


def audit(model, reference: Checkpoint | str | None = None, images=None, **options) -> AuditReport:
    """Audit a .tflite file (:func:`nafnet_litert.verify.audit.audit`: ``gpu``, ``fp16``, ``allow_unproven``, ...);
    ``reference`` is a checkpoint or a spec for :func:`load`."""
    from .verify.audit import audit as _audit

    return _audit(model, load(reference) if isinstance(reference, str) else reference, images, **options)


def deblur(
    src, dst, *, model="default", options: RestoreOptions | None = None, compare: bool = False,
    skip_existing: bool = False, progress: bool = False,
) -> RunStats:
    """Deblur a photo, a folder of photos (mirrored tree) or a video into ``dst`` at full resolution
    (:func:`nafnet_litert.restore.batch.deblur`). ``options``: how the network runs, e.g.
    ``RestoreOptions(tile=128, gpu=True)`` (default: the CLI's defaults); ``compare`` also writes NAME_compare
    (before | after), ``skip_existing`` skips inputs whose output exists, ``progress`` shows a progress bar.
    Returns the run's statistics (images, tiles, seconds)."""
    from .restore.batch import deblur as _deblur

    return _deblur(src, dst, model=model, options=options, compare=compare, skip_existing=skip_existing,
                   progress=progress)  # fmt: skip


#: Result types, by the module that makes them (imported on first use, like everything heavy here).
_RESULTS = {
    "RunStats": "restore.batch", "ExportResult": "litert.convert", "AuditReport": "verify.audit",
    "EvalResult": "eval.evaluate", "TrainResult": "train.trainer", "TrainOptions": "train.options",
}  # fmt: skip
#: Every error the package raises (all in :mod:`nafnet_litert.errors`; ``NafnetLitertError`` is their base).
_ERRORS = (
    "NafnetLitertError", "CheckpointError", "ExportError", "ModelFileError", "AuditFailed", "GpuUnavailable",
    "ProfileError", "DataError", "TrainError", "DatasetError", "EvalError", "ImageError", "OutputError", "WebError",
)  # fmt: skip


def __getattr__(name: str):
    if name in _ERRORS:
        from . import errors

        return getattr(errors, name)
    if name in _RESULTS:
        import importlib

        return getattr(importlib.import_module(f".{_RESULTS[name]}", __name__), name)
    if name in ("Restorer", "RestoreOptions"):
        from .restore import restorer

        return getattr(restorer, name)
    if name == "Photo":
        from .photo import Photo

        return Photo
    if name in ("read_image", "write_image", "load_image", "save_image"):
        from .io import image

        return getattr(image, {"read_image": "read_photo", "write_image": "write_photo"}.get(name, name))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [  # noqa: RUF022 - grouped: version, results (_RESULTS), errors (_ERRORS), classes, functions
    "__version__",
    "RunStats", "ExportResult", "AuditReport", "EvalResult", "TrainResult", "TrainOptions",
    "NafnetLitertError", "CheckpointError", "ExportError", "ModelFileError", "AuditFailed", "GpuUnavailable",
    "ProfileError", "DataError", "TrainError", "DatasetError", "EvalError", "ImageError", "OutputError", "WebError",
    "Photo",
    "RestoreOptions",
    "Restorer",
    "audit",
    "deblur",
    "export",
    "load",
    "load_image",
    "read_image",
    "save_image",
    "write_image",
]
