"""Deblur photos of any size at their own resolution: files, folders (mirrored tree) and videos.

A :class:`Deblurrer` turns a model spec into ``restore(rgb float H x W x 3) -> rgb``:

* ``backend="litert"`` (default): the checkpoint is exported once per tile size to LiteRT (cached under
  ``~/.cache/nafnet-litert``) and images are processed in overlapping tiles (:mod:`.runtime.tiling`);
  ``full_frame=True`` instead exports at the (padded) image size with TLC, NAFNetLocal's full-frame inference.
  A ``.tflite`` file given directly is used as the tile model.
* ``backend="torch"``: the PyTorch reference, tiled the same way (tiles batched), or full frame.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import NafnetLitertError
from .media import PHOTO_SUFFIXES, Photo, read_photo, side_by_side, write_photo
from .runtime.tiling import DEFAULT_OVERLAP, DEFAULT_TILE, count_tiles, tiled_restore
from .threads import torch_threads

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")


def export_key() -> str:
    """What makes an export of one checkpoint differ between installs: the graph recipe and the versions of this
    package, litert-torch and ai-edge-litert. Part of every cached model's name, so an upgrade never reuses an older
    graph."""
    import hashlib

    from .export import EXPORT_RECIPE, library_versions

    v = library_versions()
    text = "|".join([EXPORT_RECIPE] + [v.get(k, "") for k in ("nafnet-litert", "litert-torch", "ai-edge-litert")])
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def cache_dir() -> Path:
    """Where ``deblur`` keeps the models it exports: ``$NAFNET_LITERT_CACHE``, default ``~/.cache/nafnet-litert``."""
    d = Path(os.environ.get("NAFNET_LITERT_CACHE", Path.home() / ".cache" / "nafnet-litert"))
    d.mkdir(parents=True, exist_ok=True)
    return d


@dataclass
class DeblurOptions:
    model: str = "default"
    backend: str = "litert"
    gpu: bool = False
    tile: int = DEFAULT_TILE
    overlap: int = DEFAULT_OVERLAP
    full_frame: bool = False
    precision: str = "fp16"
    threads: int = 2
    batch: int = 4


class Deblurrer:
    def __init__(self, opts: DeblurOptions) -> None:
        from .checkpoint import resolve_checkpoint

        if opts.backend not in ("litert", "torch"):
            raise NafnetLitertError(f"unknown backend {opts.backend!r} (choose litert or torch)")
        if opts.overlap < 0 or opts.overlap >= opts.tile:
            raise NafnetLitertError(f"overlap must be between 0 and the tile size ({opts.tile}), got {opts.overlap}")
        self.opts = dataclasses.replace(opts)  # a copy: the caller's options are never changed
        self._tflite = str(opts.model).endswith(".tflite")
        if self._tflite and opts.backend == "torch":
            raise NafnetLitertError(
                f"{Path(opts.model).name} is a LiteRT model: the torch backend needs the checkpoint it came from"
            )
        self.ckpt = None if self._tflite else resolve_checkpoint(opts.model)
        self._lite: dict[tuple[int, int], object] = {}
        self._torch = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        if self._tflite:
            from .runtime import LiteRTModel

            m = LiteRTModel(opts.model, "gpu" if opts.gpu else "cpu", opts.threads)
            h, w = m.size
            if h != w and not opts.full_frame:
                raise NafnetLitertError(f"{Path(opts.model).name}: tiling needs a square model, this one is {h}x{w}")
            self._lite[(h, w)] = m
            self.opts.tile = h
            self.opts.overlap = min(self.opts.overlap, h // 2)

    # ------------------------------------------------------------------ models
    def close(self) -> None:
        """Release the compiled LiteRT models (also on leaving a ``with`` block)."""
        for m in self._lite.values():
            m.close()
        self._lite.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "Deblurrer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _litert_model(self, size: tuple[int, int], tlc: bool):
        if size in self._lite:
            return self._lite[size]
        if self._tflite:
            raise NafnetLitertError(f"{Path(self.opts.model).name} takes {self.opts.tile}px tiles, not {size}")
        from .export import export
        from .runtime import LiteRTModel

        tag = (self.ckpt.sha256 or "")[:16]
        name = f"{tag or 'model'}_{size[0]}x{size[1]}_{self.opts.precision}{'_tlc' if tlc else ''}_{export_key()}.tflite"
        if tag:
            path = cache_dir() / name
        else:  # an in-memory checkpoint (random:, stress:) has no identity to cache by: a folder of our own
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="nafnet-litert-")
            path = Path(self._tmp.name) / name
        if not path.is_file():
            kw = {"tlc": True} if tlc else {}
            export(self.ckpt, path, size, self.opts.precision, **kw)
        m = LiteRTModel(path, "gpu" if self.opts.gpu else "cpu", self.opts.threads)
        self._lite[size] = m
        return m

    def _torch_net(self):
        if self._torch is None:
            net = self.ckpt.build_reference()
            if self.opts.full_frame:
                from .model.tlc import to_tlc

                net = to_tlc(net)
            self._torch = net
        return self._torch

    def _tile_fn(self) -> Callable[[np.ndarray], np.ndarray]:
        t = self.opts.tile
        if self.opts.backend == "torch" and not self._tflite:
            import torch

            net = self._torch_net()

            def run(batch: np.ndarray) -> np.ndarray:
                with torch_threads(self.opts.threads), torch.inference_mode():
                    return net(torch.from_numpy(batch)).numpy()

            return run
        model = self._litert_model((t, t), tlc=False)
        return lambda batch: np.concatenate([model.run(b[None]) for b in batch])

    # ------------------------------------------------------------------ images
    def tiles_for(self, h: int, w: int) -> int:
        return 1 if self.opts.full_frame else count_tiles(h, w, self.opts.tile, self.opts.overlap)

    def restore(self, rgb: np.ndarray, progress: Callable[[int], None] | None = None) -> np.ndarray:
        """H x W x 3, float32 in [0, 1] (-> float, unclamped) or uint8/uint16 (-> the same dtype, tiles converted
        one at a time so no float copy of the whole image is made)."""
        if self.opts.full_frame:
            if rgb.dtype.kind != "f":
                from .runtime.tiling import from_float, to_float

                return from_float(self._full_frame(to_float(rgb)), rgb.dtype)
            out = self._full_frame(rgb)
            if progress:
                progress(1)
            return out
        batch = self.opts.batch if self.opts.backend == "torch" else 1
        return tiled_restore(rgb, self._tile_fn(), self.opts.tile, self.opts.overlap, batch, progress)

    def _full_frame(self, rgb: np.ndarray) -> np.ndarray:
        from .images import from_nchw, pad_to_multiple, to_nchw

        h, w = rgb.shape[:2]
        padded = pad_to_multiple(rgb, self.ckpt.config.padder_size if self.ckpt else 16)
        ph, pw = padded.shape[:2]
        if self.opts.backend == "torch" and not self._tflite:
            import torch

            with torch_threads(self.opts.threads), torch.inference_mode():
                y = self._torch_net()(torch.from_numpy(to_nchw(padded))).numpy()
        else:
            y = self._litert_model((ph, pw), tlc=True).run(to_nchw(padded))
        return from_nchw(y)[:h, :w]

    def deblur_photo(self, photo: Photo, progress=None) -> Photo:
        rgb = np.repeat(photo.color, 3, axis=2) if photo.gray else photo.color
        return photo.with_color(self.restore(rgb, progress))


# ---------------------------------------------------------------------- files, folders, video
@dataclass
class Job:
    src: Path
    dst: Path
    compare: Path | None = None


def plan_jobs(src: Path, dst: Path, compare: bool, skip_existing: bool) -> list[Job]:
    """Files to process: one file, or every photo under a folder mirrored into ``dst``."""
    if not src.exists():
        raise NafnetLitertError(f"input not found: {src}")
    if src.is_file():
        if src.suffix.lower() not in PHOTO_SUFFIXES + VIDEO_SUFFIXES:
            raise NafnetLitertError(f"{src.name}: unsupported file type (photos: {', '.join(PHOTO_SUFFIXES)}; "
                                    f"videos: {', '.join(VIDEO_SUFFIXES)})")  # fmt: skip
        if dst.is_dir():
            dst = dst / src.name
        if not dst.parent.is_dir():
            raise NafnetLitertError(f"output folder does not exist: {dst.parent}")
        if src.suffix.lower() in PHOTO_SUFFIXES and dst.suffix.lower() not in PHOTO_SUFFIXES:
            raise NafnetLitertError(f"{dst.name}: output must be a photo file ({', '.join(PHOTO_SUFFIXES)})")
        jobs = [Job(src, dst, _compare_path(dst) if compare else None)]
    else:
        if dst.exists() and not dst.is_dir():
            raise NafnetLitertError(f"output for a folder must be a folder: {dst}")
        files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
        if not files:
            raise NafnetLitertError(f"no photos in {src} ({', '.join(PHOTO_SUFFIXES)})")
        if dst.resolve() == src.resolve():
            raise NafnetLitertError("output folder must differ from the input folder")
        jobs = []
        for f in files:
            out = dst / f.relative_to(src)
            jobs.append(Job(f, out, _compare_path(out) if compare else None))
    if skip_existing:
        jobs = [j for j in jobs if not j.dst.exists()]
    return jobs


def _compare_path(p: Path) -> Path:
    return p.with_name(f"{p.stem}_compare{p.suffix}")


@dataclass
class RunStats:
    images: int = 0
    tiles: int = 0
    seconds: float = 0.0


def _write_outputs(photo: Photo, out: Photo, job: Job) -> None:
    job.dst.parent.mkdir(parents=True, exist_ok=True)
    write_photo(out, job.dst)
    if job.compare:
        write_photo(side_by_side(photo, out), job.compare)


def run_jobs(deb: Deblurrer, jobs: list[Job], progress: bool = True) -> RunStats:
    """Process ``jobs`` with decoding, inference and encoding overlapped: while photo i is restored, photo i+1
    is decoded and photo i-1 encoded on worker threads (Pillow, LiteRT and PyTorch release the GIL), so a folder
    runs at the speed of inference."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    stats = RunStats()
    t0 = time.perf_counter()
    bar = tqdm(total=len(jobs), unit="img", disable=not progress, desc="deblur")
    photos = [j for j in jobs if j.src.suffix.lower() not in VIDEO_SUFFIXES]
    videos = [j for j in jobs if j.src.suffix.lower() in VIDEO_SUFFIXES]
    with ThreadPoolExecutor(max_workers=1) as reader, ThreadPoolExecutor(max_workers=1) as writer:
        pending = reader.submit(read_photo, photos[0].src) if photos else None
        writes = []
        for k, job in enumerate(photos):
            photo = pending.result()
            pending = reader.submit(read_photo, photos[k + 1].src) if k + 1 < len(photos) else None
            out = deb.deblur_photo(photo)
            writes.append(writer.submit(_write_outputs, photo, out, job))
            stats.tiles += deb.tiles_for(*photo.color.shape[:2])
            stats.images += 1
            bar.update(1)
            done = [w for w in writes if w.done()]
            for w in done:
                w.result()  # re-raise a failed write now
                writes.remove(w)
        for w in writes:
            w.result()
    for job in videos:
        from .video import deblur_video

        deblur_video(deb, job.src, job.dst, progress=progress)
        stats.images += 1
        bar.update(1)
    bar.close()
    stats.seconds = time.perf_counter() - t0
    return stats
