"""The one restorer: a model spec and options in, ``image -> restored image`` out.

``deblur``, ``eval``, the demo and the tiling study all run images through :class:`Restorer`, so the same options
always mean the same network and the same numbers:

* ``backend="litert"`` (default): the checkpoint is exported to LiteRT once per input size and cached (see
  :func:`cache_dir`). Images run in overlapping, smoothly blended tiles of ``tile`` px (:mod:`.tiling`);
  ``full_frame=True`` runs the whole (padded) image at once with NAFNetLocal's TLC (``tlc=False``: the plain
  network, as in the reference code). A ``.tflite`` file is used as it is: its size is the tile size (or the frame
  size with ``full_frame``).
* ``backend="torch"``: the PyTorch reference network, tiled the same way (tiles batched), or full frame.

Images: H x W (gray), H x W x 1|2|3|4 arrays in uint8, uint16 or float32 [0, 1], or Pillow images; the result
has the input's type, shape, dtype and mode (gray stays gray, alpha is carried through). Float results are not
clamped, so metrics can round them exactly as BasicSR does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import NafnetLitertError
from ..facts import BACKENDS, DEFAULT_OVERLAP, DEFAULT_TILE, PRECISIONS
from ..io.image import (
    Photo,
    from_float,
    from_nchw,
    pad_to_multiple,
    photo_from_array,
    photo_from_pil,
    photo_to_array,
    photo_to_pil,
    to_float,
    to_nchw,
)
from ..threads import torch_threads
from .tiling import count_tiles, tiled_restore



def export_key() -> str:
    """What makes an export of one checkpoint differ between installs: the graph recipe and the versions of this
    package, litert-torch and ai-edge-litert. Part of every cached model's name, so an upgrade never reuses an older
    graph."""
    from ..litert.convert import EXPORT_RECIPE, library_versions

    v = library_versions()
    text = "|".join([EXPORT_RECIPE] + [v.get(k, "") for k in ("nafnet-litert", "litert-torch", "ai-edge-litert")])
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def cache_dir(writable: bool = True) -> Path:
    """Where restorers keep the models they export: ``$NAFNET_LITERT_CACHE``, default ``~/.cache/nafnet-litert``.
    A model's name holds the checkpoint's hash, the size, precision, TLC and :func:`export_key`. ``writable=False``:
    only where it is, for reading (a read-only cache that holds the model is usable)."""
    from ..io.files import check_writable

    d = Path(os.environ.get("NAFNET_LITERT_CACHE") or Path.home() / ".cache" / "nafnet-litert")
    if not writable:
        return d
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NafnetLitertError(f"cannot create the model cache {d} ({e.strerror}); set NAFNET_LITERT_CACHE") from None
    check_writable(d, "model cache (set NAFNET_LITERT_CACHE to move it)")
    return d


def cached_model_name(ckpt, size: tuple[int, int], precision: str, tlc: bool = False) -> str:
    """The model cache's name for ``ckpt`` (a checkpoint with a file hash) exported at ``size`` and ``precision``."""
    return f"{ckpt.sha256[:16]}_{size[0]}x{size[1]}_{precision}{'_tlc' if tlc else ''}_{export_key()}.tflite"


def cached_export(ckpt, size: tuple[int, int], precision: str, tlc: bool = False) -> Path:
    """``ckpt`` (a checkpoint with a file hash) exported at ``size`` and ``precision``, through the model cache: an
    intact cached copy is used (also from a read-only cache), else it is exported into the cache (again when the
    cached copy is damaged). Returns the cached ``.tflite`` (its sidecar ``.json`` beside it)."""
    from ..litert.convert import export

    name = cached_model_name(ckpt, size, precision, tlc)
    path = cache_dir(writable=False) / name
    if not _intact(path):
        path = cache_dir() / name
        if not _intact(path):  # missing, or damaged (a crash, a full disk, a hand edit): export it again
            export(ckpt, path, size, precision, tlc=tlc)
    return path


def _intact(model: Path) -> bool:
    """A cached model is used only when its sidecar's SHA-256 matches the file."""
    from ..litert.sidecar import read_sidecar
    from ..models.checkpoint import sha256_file

    sidecar = read_sidecar(model)
    try:
        return sidecar is not None and model.is_file() and sidecar.model_sha256 == sha256_file(model)
    except OSError:
        return False


_GRAY_MODEL = (
    "{name}: a {c}-channel model; deblur restores RGB photos with 3-channel models only (gray photos are run as RGB "
    "and converted back)"
)


def _check_image_model(path: Path) -> None:
    """Before any work: a .tflite must be a 3-channel float32 image-to-image model (the audit's ``io`` check)."""
    from ..litert.graph import read_graph
    from ..litert.runtime import infer_io
    from ..litert.sidecar import read_sidecar
    from ..litert.static_audit import io_contract

    g = read_graph(path)
    text, error = io_contract(g)
    if error:
        raise NafnetLitertError(f"{path.name}: not an image-to-image model ({error}; it has {text})")
    channels = infer_io(g.tensors[g.inputs[0]].shape, read_sidecar(path)).channels
    if channels != 3:
        raise NafnetLitertError(_GRAY_MODEL.format(name=path.name, c=channels))


@dataclass(frozen=True)
class RestoreOptions:
    """How a :class:`Restorer` runs (validated on creation)."""

    backend: str = "litert"
    tile: int = DEFAULT_TILE
    overlap: int = DEFAULT_OVERLAP
    full_frame: bool = False
    tlc: bool = True
    precision: str = "fp16"
    gpu: bool = False
    threads: int = 2
    batch: int = 4

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise NafnetLitertError(f"unknown backend {self.backend!r} (choose {' or '.join(BACKENDS)})")
        if self.precision not in PRECISIONS:
            raise NafnetLitertError(f"unknown precision {self.precision!r} (choose {' or '.join(PRECISIONS)})")
        if not isinstance(self.tile, int) or self.tile < 16 or self.tile % 16:
            raise NafnetLitertError(f"tile must be a positive multiple of 16, got {self.tile}")
        if not isinstance(self.overlap, int) or not 0 <= self.overlap < self.tile:
            raise NafnetLitertError(f"overlap must be between 0 and the tile size ({self.tile}), got {self.overlap}")
        if not isinstance(self.threads, int) or self.threads < 1:
            raise NafnetLitertError(f"threads must be a positive integer, got {self.threads}")
        if not isinstance(self.batch, int) or self.batch < 1:
            raise NafnetLitertError(f"batch must be a positive integer, got {self.batch}")
        if self.gpu and self.backend != "litert":
            raise NafnetLitertError("--gpu runs LiteRT's GPU accelerator: it needs the litert backend")


class Restorer:
    """``Restorer(model="default", **options)``; ``model`` is ``default``, a checkpoint path, ``random:PRESET``,
    ``stress:SPEC``, a loaded checkpoint (:func:`nafnet_litert.load`) or a ``.tflite`` file; ``options`` are the
    fields of :class:`RestoreOptions`. Call it on an image; use it as a context manager (or :meth:`close`) to
    release the compiled models and any temporary folder."""

    def __init__(self, model="default", **options) -> None:
        from ..models.checkpoint import Checkpoint, resolve_checkpoint

        unknown = set(options) - {f.name for f in dataclasses.fields(RestoreOptions)}
        if unknown:
            raise TypeError(f"unknown Restorer option(s): {', '.join(sorted(unknown))}")
        self.options = opts = RestoreOptions(**options)
        self.model = model
        self._tflite = isinstance(model, (str, Path)) and str(model).endswith(".tflite")
        if self._tflite and opts.backend == "torch":
            raise NafnetLitertError(
                f"{Path(model).name} is a LiteRT model: the torch backend needs the checkpoint it came from"
            )
        self.ckpt = model if isinstance(model, Checkpoint) else None if self._tflite else resolve_checkpoint(model)
        if self._tflite:
            _check_image_model(Path(model))
        elif self.ckpt.config.img_channel != 3:
            name = self.ckpt.path.name if self.ckpt.path else self.ckpt.name
            raise NafnetLitertError(_GRAY_MODEL.format(name=name, c=self.ckpt.config.img_channel))
        if not self._tflite and opts.backend == "litert" and self.ckpt.sha256 and not opts.full_frame:
            # a cache that cannot be written is found now, not after the first photo; a read-only cache that
            # already holds this tile model is fine
            if not _intact(cache_dir(writable=False) / self._model_name((opts.tile, opts.tile))):
                cache_dir()
        self._lite: dict[tuple[int, int], object] = {}
        self._paths: dict[tuple[int, int], Path] = {}
        self._torch = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        if self._tflite:
            from ..litert import LiteRTModel

            m = LiteRTModel(model, "gpu" if opts.gpu else "cpu", opts.threads)
            h, w = m.size
            if h != w and not opts.full_frame:
                m.close()
                raise NafnetLitertError(f"{Path(model).name}: tiling needs a square model, this one is {h}x{w}")
            self._lite[(h, w)] = m
            self._paths[(h, w)] = Path(model)
            if not opts.full_frame:
                self.options = dataclasses.replace(opts, tile=h, overlap=min(opts.overlap, h // 2))

    @property
    def name(self) -> str:
        o = self.options
        what = "LiteRT " + ("GPU" if o.gpu else "CPU") + f" {o.precision}" if o.backend == "litert" else "PyTorch"
        if self._tflite:
            what = f"LiteRT {'GPU' if o.gpu else 'CPU'} ({Path(self.model).name})"
        how = ("full frame" + (", TLC" if o.tlc else "")) if o.full_frame else f"{o.tile} px tiles, {o.overlap} px overlap"
        return f"{what}, {how}"

    @property
    def model_files(self) -> list[Path]:
        """The LiteRT files this restorer has run so far (exported or given)."""
        return list(self._paths.values())

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Release the compiled LiteRT models and remove the temporary folder of file-less checkpoints."""
        for m in self._lite.values():
            m.close()
        self._lite.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "Restorer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ networks
    def litert_model(self, size: tuple[int, int]):
        """The compiled LiteRT model for an input of ``size`` (exported and cached on first use)."""
        if size in self._lite:
            return self._lite[size]
        if self._tflite:
            (have,) = self._lite
            raise NafnetLitertError(
                f"{Path(self.model).name} takes {have[0]}x{have[1]} inputs, not {size[0]}x{size[1]} "
                "(export one at this size, or use tiles)"
            )
        from ..litert.convert import export
        from ..litert import LiteRTModel

        o = self.options
        tlc = o.full_frame and o.tlc
        if self.ckpt.sha256:
            path = cached_export(self.ckpt, size, o.precision, tlc)
        else:  # an in-memory checkpoint (random:, stress:) has no identity to cache by: a folder of our own
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="nafnet-litert-")
            path = Path(self._tmp.name) / self._model_name(size)
            if not _intact(path):
                export(self.ckpt, path, size, o.precision, tlc=tlc)
        m = LiteRTModel(path, "gpu" if o.gpu else "cpu", o.threads)
        self._lite[size] = m
        self._paths[size] = path
        return m

    def _model_name(self, size: tuple[int, int]) -> str:
        o = self.options
        tlc = o.full_frame and o.tlc
        if self.ckpt.sha256:
            return cached_model_name(self.ckpt, size, o.precision, tlc)
        return f"model_{size[0]}x{size[1]}_{o.precision}{'_tlc' if tlc else ''}_{export_key()}.tflite"

    def _torch_net(self):
        if self._torch is None:
            net = self.ckpt.build_reference()
            if self.options.full_frame and self.options.tlc:
                from ..models.tlc import to_tlc

                net = to_tlc(net)
            self._torch = net
        return self._torch

    def _run_nchw(self, x: np.ndarray) -> np.ndarray:
        """float32 [N, 3, H, W] -> [N, 3, H, W] through the chosen backend (LiteRT: one image at a time)."""
        if self.options.backend == "torch":
            import torch

            with torch_threads(self.options.threads), torch.inference_mode():
                return self._torch_net()(torch.from_numpy(x)).numpy()
        model = self.litert_model(tuple(x.shape[2:]))
        y = np.concatenate([model.run(b[None]) for b in x])
        if not np.isfinite(y).all():  # NaN/inf would be written as black or white pixels: never a silent photo
            raise NafnetLitertError(
                f"{self.name}: the model gave non-finite values (NaN or inf); nothing was written. Audit the model "
                "(nafnet-litert audit) or use another checkpoint"
            )
        return y

    # ------------------------------------------------------------------ images
    def tiles_for(self, h: int, w: int) -> int:
        """How many model runs an H x W image takes."""
        o = self.options
        return 1 if o.full_frame else count_tiles(h, w, o.tile, o.overlap)

    def restore(self, rgb: np.ndarray, progress: Callable[[int], None] | None = None) -> np.ndarray:
        """H x W x 3 in uint8, uint16 or float32 [0, 1] -> the same dtype (float: unclamped). Integer images are
        converted tile by tile, so no float copy of a whole large image is made. ``progress(n)`` is called as
        ``n`` more model runs finish."""
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise NafnetLitertError(f"restore() takes H x W x 3 images, got shape {rgb.shape}")
        o = self.options
        if o.full_frame:
            out = self._full_frame(to_float(rgb))
            if progress:
                progress(1)
            return out if rgb.dtype.kind == "f" else from_float(out, rgb.dtype)
        batch = o.batch if o.backend == "torch" else 1
        return tiled_restore(rgb, self._run_nchw, o.tile, o.overlap, batch, progress)

    def _full_frame(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        padded = pad_to_multiple(rgb, 16 if self._tflite else self.ckpt.config.padder_size)
        return from_nchw(self._run_nchw(to_nchw(padded)))[:h, :w]

    def restore_photo(self, photo: Photo, progress: Callable[[int], None] | None = None) -> Photo:
        """A :class:`~nafnet_litert.io.image.Photo` in its own depth and mode (alpha, ICC, EXIF kept)."""
        return photo.with_color(self.restore(photo.rgb(), progress))

    def __call__(self, image, progress: Callable[[int], None] | None = None):
        """Restore an array or a Pillow image; the result has the input's type, shape, dtype and mode (Pillow
        modes other than L, LA, RGB, RGBA and I;16 come back as RGB or RGBA)."""
        from PIL import Image

        if isinstance(image, Image.Image):
            return photo_to_pil(self.restore_photo(photo_from_pil(image), progress))
        photo = photo_from_array(image)
        return photo_to_array(self.restore_photo(photo, progress), gray_2d=np.asarray(image).ndim == 2)
