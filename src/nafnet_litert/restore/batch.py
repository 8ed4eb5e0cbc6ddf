"""Deblur files: one photo, every photo under a folder (mirrored tree) or a video, through one :class:`Restorer`.

:func:`deblur` is the whole job in one call (what ``nafnet-litert deblur`` runs); :func:`plan_jobs` and
:func:`run_jobs` are its two halves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import NafnetLitertError
from ..io.image import PHOTO_SUFFIXES, Photo, read_photo, side_by_side, write_photo
from .restorer import Restorer

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")


def deblur(
    src, dst, *, model="default", compare: bool = False, skip_existing: bool = False, progress: bool = False,
    **options,
) -> "RunStats":
    """Deblur ``src`` (a photo, a folder or a video) into ``dst`` (a file or folder): photos at their own size,
    depth and mode, EXIF/ICC/alpha kept. ``options`` are :class:`~.restorer.RestoreOptions` fields."""
    jobs = plan_jobs(Path(src), Path(dst), compare, skip_existing)
    if not jobs:
        return RunStats()
    with Restorer(model, **options) as restorer:
        return run_jobs(restorer, jobs, progress=progress)


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


def run_jobs(restorer: Restorer, jobs: list[Job], progress: bool = True) -> RunStats:
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
            out = restorer.restore_photo(photo)
            writes.append(writer.submit(_write_outputs, photo, out, job))
            stats.tiles += restorer.tiles_for(*photo.color.shape[:2])
            stats.images += 1
            bar.update(1)
            done = [w for w in writes if w.done()]
            for w in done:
                w.result()  # re-raise a failed write now
                writes.remove(w)
        for w in writes:
            w.result()
    for job in videos:
        from ..io.video import deblur_video

        deblur_video(restorer, job.src, job.dst, progress=progress)
        stats.images += 1
        bar.update(1)
    bar.close()
    stats.seconds = time.perf_counter() - t0
    return stats
