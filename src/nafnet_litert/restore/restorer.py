"""The one restorer: a model spec and options in, ``image -> restored image`` out.

``deblur``, ``eval``, the demo and the tiling study all run images through :class:`Restorer`, so the same options
always mean the same network and the same numbers:

* ``backend="litert"`` (default): the checkpoint is exported to LiteRT once per input size and cached (see
  :mod:`nafnet_litert.litert.cache`). Images run in overlapping, smoothly blended tiles of ``tile`` px
  (:mod:`.tiling`); ``full_frame=True`` runs the whole (padded) image at once with NAFNetLocal's TLC
  (``tlc=False``: the plain network, as in the reference code). A ``.tflite`` file is used as it is: its size is the tile size (or the frame
  size with ``full_frame``).
* ``backend="torch"``: the PyTorch reference network, tiled the same way (tiles batched), or full frame.

Images: H x W (gray), H x W x 1|2|3|4 arrays in uint8, uint16 or float32 [0, 1], or Pillow images; the result
has the input's type, shape, dtype and mode (gray stays gray, alpha is carried through). Float results are not
clamped, so metrics can round them exactly as BasicSR does.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, overload

import numpy as np

from ..errors import NafnetLitertError
from ..facts import BACKENDS, DEFAULT_OVERLAP, DEFAULT_TILE, PRECISIONS
from ..litert.cachedir import cache_dir
from ..litert.cache import (
    GRAY_MODEL,
    cached_export,
    cached_model_name,
    check_image_model,
    export_key,
    intact,
)
from ..models.config import NAFNetConfig, SizeRule
from ..photo import Photo, from_float, photo_from_array, photo_to_array, to_float
from ..threads import torch_threads
from .pixels import from_nchw, pad_to_multiple, photo_from_pil, photo_to_pil, to_nchw
from .tiling import count_tiles, tiled_restore

if TYPE_CHECKING:  # for the annotations only: PyTorch and LiteRT load on first use
    from PIL.Image import Image as PILImage

    from ..litert.runtime import LiteRTModel
    from ..models.checkpoint import Checkpoint
    from ..models.reference import NAFNet


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
        if not isinstance(self.tile, int) or self.tile < 1:  # its multiple is the network's (Restorer checks)
            raise NafnetLitertError(f"tile must be a positive number of pixels, got {self.tile}")
        if not isinstance(self.overlap, int) or not 0 <= self.overlap < self.tile:
            raise NafnetLitertError(f"overlap must be between 0 and the tile size ({self.tile}), got {self.overlap}")
        if not isinstance(self.threads, int) or self.threads < 1:
            raise NafnetLitertError(f"threads must be a positive integer, got {self.threads}")
        if not isinstance(self.batch, int) or self.batch < 1:
            raise NafnetLitertError(f"batch must be a positive integer, got {self.batch}")
        if self.gpu and self.backend != "litert":
            raise NafnetLitertError("--gpu runs LiteRT's GPU accelerator: it needs the litert backend")


class Restorer:
    """``Restorer(model="default", **fields)`` or ``Restorer(model, RestoreOptions(...))``; ``model`` is
    ``default``, a checkpoint path, ``random:PRESET``, ``stress:SPEC``, a loaded checkpoint
    (:func:`nafnet_litert.load`) or a ``.tflite`` file; ``fields`` are the fields of :class:`RestoreOptions` (or
    give the options whole, as the CLI does). Call it on an image; use it as a context manager (or :meth:`close`) to
    release the compiled models and any temporary folder."""

    def __init__(
        self, model: str | Path | Checkpoint = "default", options: RestoreOptions | None = None, **fields
    ) -> None:
        if options is not None and not isinstance(options, RestoreOptions):
            raise TypeError(f"options must be a RestoreOptions, got {type(options).__name__}")
        if options is not None and fields:
            raise TypeError("give a Restorer its options as a RestoreOptions or as keywords, not both")
        unknown = set(fields) - {f.name for f in dataclasses.fields(RestoreOptions)}
        if unknown:
            raise TypeError(f"unknown Restorer option(s): {', '.join(sorted(unknown))}")
        self.options = opts = options if options is not None else RestoreOptions(**fields)
        self.model = model
        tflite = Path(model) if isinstance(model, (str, Path)) and str(model).endswith(".tflite") else None
        self._tflite_path = tflite  #: the .tflite file given as the model (None: a checkpoint)
        self._tflite = tflite is not None
        if tflite is not None and opts.backend == "torch":
            raise NafnetLitertError(
                f"{tflite.name} is a LiteRT model: the torch backend needs the checkpoint it came from"
            )
        if tflite is None:  # a .tflite alone never imports PyTorch (a Ray worker starts faster without it)
            from ..models.checkpoint import Checkpoint, resolve_checkpoint

            ckpt = model if isinstance(model, Checkpoint) else resolve_checkpoint(model)
        else:
            ckpt = None
        self.ckpt: Checkpoint | None = ckpt  #: None for a .tflite model
        if tflite is not None:
            check_image_model(tflite)
        elif ckpt is not None and ckpt.config.img_channel != 3:
            name = ckpt.path.name if ckpt.path else ckpt.name
            raise NafnetLitertError(GRAY_MODEL.format(name=name, c=ckpt.config.img_channel))
        if ckpt is not None and not opts.full_frame and not ckpt.config.sizes.fits(opts.tile):
            m = ckpt.config.sizes.multiple
            raise NafnetLitertError(f"tile must be a positive multiple of {m} for this network, got {opts.tile}")
        if ckpt is not None and opts.backend == "litert" and ckpt.sha256 and not opts.full_frame:
            # a cache that cannot be written is found now, not after the first photo; a read-only cache that
            # already holds this tile model is fine
            if not intact(cache_dir(writable=False) / self._model_name((opts.tile, opts.tile))):
                cache_dir()
        self._lite: dict[tuple[int, int], LiteRTModel] = {}
        self._paths: dict[tuple[int, int], Path] = {}
        self._torch: NAFNet | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        if tflite is not None:
            from ..litert import LiteRTModel

            m = LiteRTModel(tflite, "gpu" if opts.gpu else "cpu", opts.threads)
            h, w = m.size
            if h != w and not opts.full_frame:
                m.close()
                raise NafnetLitertError(f"{tflite.name}: tiling needs a square model, this one is {h}x{w}")
            self._lite[(h, w)] = m
            self._paths[(h, w)] = tflite
            if not opts.full_frame:
                self.options = dataclasses.replace(opts, tile=h, overlap=min(opts.overlap, h // 2))

    @property
    def name(self) -> str:
        o = self.options
        what = "LiteRT " + ("GPU" if o.gpu else "CPU") + f" {o.precision}" if o.backend == "litert" else "PyTorch"
        if self._tflite_path is not None:
            what = f"LiteRT {'GPU' if o.gpu else 'CPU'} ({self._tflite_path.name})"
        how = ("full frame" + (", TLC" if o.tlc else "")) if o.full_frame else f"{o.tile} px tiles, {o.overlap} px overlap"
        return f"{what}, {how}"

    @property
    def loaded_sizes(self) -> list[tuple[int, int]]:
        """The input sizes (H, W) of the LiteRT models compiled and open now (empty once closed)."""
        return list(self._lite)

    @property
    def export_folder(self) -> Path | None:
        """The temporary folder that holds the exports of a checkpoint without a file (``random:``, ``stress:``),
        removed on :meth:`close`; None when there is none."""
        return Path(self._tmp.name) if self._tmp is not None else None

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
    def _checkpoint(self) -> Checkpoint:
        """The checkpoint this restorer runs (only a restorer of a .tflite file has none, and never asks)."""
        if self.ckpt is None:
            raise NafnetLitertError("this restorer runs a .tflite file: it has no checkpoint")
        return self.ckpt

    def litert_model(self, size: tuple[int, int]) -> LiteRTModel:
        """The compiled LiteRT model for an input of ``size`` (exported and cached on first use)."""
        if size in self._lite:
            return self._lite[size]
        if self._tflite_path is not None:
            (have,) = self._lite
            raise NafnetLitertError(
                f"{self._tflite_path.name} takes {have[0]}x{have[1]} inputs, not {size[0]}x{size[1]} "
                "(export one at this size, or use tiles)"
            )
        from ..litert.convert import export
        from ..litert import LiteRTModel

        o = self.options
        tlc = o.full_frame and o.tlc
        ckpt = self._checkpoint()
        if ckpt.sha256:
            path = cached_export(ckpt, size, o.precision, tlc)
        else:  # an in-memory checkpoint (random:, stress:) has no identity to cache by: a folder of our own
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="nafnet-litert-")
            path = Path(self._tmp.name) / self._model_name(size)
            if not intact(path):
                export(ckpt, path, size, o.precision, tlc=tlc)
        m = LiteRTModel(path, "gpu" if o.gpu else "cpu", o.threads)
        self._lite[size] = m
        self._paths[size] = path
        return m

    def _model_name(self, size: tuple[int, int]) -> str:
        o = self.options
        tlc = o.full_frame and o.tlc
        ckpt = self._checkpoint()
        if ckpt.sha256:
            return cached_model_name(ckpt, size, o.precision, tlc)
        return f"model_{size[0]}x{size[1]}_{o.precision}{'_tlc' if tlc else ''}_{export_key()}.tflite"

    def torch_net(self) -> NAFNet:
        """The PyTorch network the torch backend runs (built from the checkpoint on first use; TLC-wrapped for
        full-frame TLC runs)."""
        if self._torch is None:
            net = self._checkpoint().build_reference()
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
                return self.torch_net()(torch.from_numpy(x)).numpy()
        model = self.litert_model((x.shape[2], x.shape[3]))
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

    def _size_rule(self) -> SizeRule:
        """The network's input sizes: the checkpoint's, or a .tflite file's from its sidecar (a file without one
        takes only its own size, so nothing is padded and another size is refused in one line)."""
        if not self._tflite:
            return self._checkpoint().config.sizes
        sidecar = next(iter(self._lite.values())).sidecar if self._lite else None
        return NAFNetConfig.from_dict(sidecar.config).sizes if sidecar and sidecar.config else SizeRule(1)

    def _full_frame(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        padded = pad_to_multiple(rgb, self._size_rule().multiple)
        return from_nchw(self._run_nchw(to_nchw(padded)))[:h, :w]

    def restore_photo(self, photo: Photo, progress: Callable[[int], None] | None = None) -> Photo:
        """A :class:`~nafnet_litert.photo.Photo` in its own depth and mode (alpha, ICC, EXIF kept)."""
        return photo.with_color(self.restore(photo.rgb(), progress))

    @overload
    def __call__(self, image: np.ndarray, progress: Callable[[int], None] | None = None) -> np.ndarray: ...
    @overload
    def __call__(self, image: PILImage, progress: Callable[[int], None] | None = None) -> PILImage: ...
    def __call__(self, image, progress: Callable[[int], None] | None = None):
        """Restore an array or a Pillow image; the result has the input's type, shape, dtype and mode (Pillow
        modes other than L, LA, RGB, RGBA and I;16 come back as RGB or RGBA)."""
        from PIL import Image

        if isinstance(image, Image.Image):
            return photo_to_pil(self.restore_photo(photo_from_pil(image), progress))
        photo = photo_from_array(image)
        return photo_to_array(self.restore_photo(photo, progress), gray_2d=np.asarray(image).ndim == 2)
