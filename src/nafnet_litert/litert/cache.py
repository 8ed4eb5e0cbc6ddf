"""The model cache: where exported LiteRT files are kept and found again, and the check that a ``.tflite`` is an
image model deblur can run.

It lives on the ``litert`` floor because it is about exported artifacts (their names, their sidecars, whether a
copy is intact), not about restoring: :class:`~nafnet_litert.restore.Restorer` and the browser site both take
models from here. Exporting (PyTorch) is imported only when a model is missing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import NafnetLitertError
from .cachedir import cache_dir


def export_key() -> str:
    """What makes an export of one checkpoint differ between installs: the graph recipe and the versions of this
    package, litert-torch and ai-edge-litert. Part of every cached model's name, so an upgrade never reuses an older
    graph."""
    from .convert import EXPORT_RECIPE, library_versions

    v = library_versions()
    text = "|".join([EXPORT_RECIPE] + [v.get(k, "") for k in ("nafnet-litert", "litert-torch", "ai-edge-litert")])
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def cached_model_name(ckpt, size: tuple[int, int], precision: str, tlc: bool = False) -> str:
    """The model cache's name for ``ckpt`` (a checkpoint with a file hash) exported at ``size`` and ``precision``."""
    return f"{ckpt.sha256[:16]}_{size[0]}x{size[1]}_{precision}{'_tlc' if tlc else ''}_{export_key()}.tflite"


def cached_export(ckpt, size: tuple[int, int], precision: str, tlc: bool = False) -> Path:
    """``ckpt`` (a checkpoint with a file hash) exported at ``size`` and ``precision``, through the model cache: an
    intact cached copy is used (also from a read-only cache), else it is exported into the cache (again when the
    cached copy is damaged). Returns the cached ``.tflite`` (its sidecar ``.json`` beside it)."""
    from .convert import export

    name = cached_model_name(ckpt, size, precision, tlc)
    path = cache_dir(writable=False) / name
    if not intact(path):
        path = cache_dir() / name
        if not intact(path):  # missing, or damaged (a crash, a full disk, a hand edit): export it again
            export(ckpt, path, size, precision, tlc=tlc)
    return path


def intact(model: Path) -> bool:
    """A cached model is used only when its sidecar's SHA-256 matches the file."""
    from ..models.checkpoint import sha256_file
    from .sidecar import read_sidecar

    sidecar = read_sidecar(model)
    try:
        return sidecar is not None and model.is_file() and sidecar.model_sha256 == sha256_file(model)
    except OSError:
        return False


GRAY_MODEL = (
    "{name}: a {c}-channel model; deblur restores RGB photos with 3-channel models only (gray photos are run as RGB "
    "and converted back)"
)


def check_image_model(path: Path) -> None:
    """Before any work: a .tflite must be a 3-channel float32 image-to-image model (the audit's ``io`` check)."""
    from .graph import read_graph
    from .runtime import infer_io
    from .sidecar import read_sidecar
    from .static_audit import io_contract

    g = read_graph(path)
    text, error = io_contract(g)
    if error:
        raise NafnetLitertError(f"{path.name}: not an image-to-image model ({error}; it has {text})")
    channels = infer_io(g.tensors[g.inputs[0]].shape, read_sidecar(path)).channels
    if channels != 3:
        raise NafnetLitertError(GRAY_MODEL.format(name=path.name, c=channels))
