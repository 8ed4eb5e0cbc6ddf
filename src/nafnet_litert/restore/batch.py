"""Deblur files: one photo, every photo under a folder (mirrored tree) or a video, through one :class:`Restorer`.

:func:`deblur` is the whole job in one call (what ``nafnet-litert deblur`` runs); :func:`plan_jobs` and
:func:`run_jobs` are its two halves.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NafnetLitertError, describe
from ..facts import DEFAULT_MAX_PIXELS, PHOTO_SUFFIXES, VIDEO_OUT_SUFFIXES, VIDEO_SUFFIXES
from ..io.files import check_writable, is_hidden
from ..io.image import read_photo, side_by_side, write_photo
from ..photo import Photo
from .restorer import RestoreOptions, Restorer



def deblur(
    src, dst, *, model="default", options: RestoreOptions | None = None, compare: bool = False,
    skip_existing: bool = False, progress: bool = False,
) -> "RunStats":
    """Deblur ``src`` (a photo, a folder or a video) into ``dst`` (a file or folder): photos at their own size,
    depth and mode, EXIF/ICC/alpha kept. ``options``: how the network runs (default: :class:`RestoreOptions`'s
    defaults); ``compare``, ``skip_existing`` and ``progress``: what the run writes and shows."""
    jobs = plan_jobs(Path(src), Path(dst), compare, skip_existing)
    if not jobs:
        return RunStats()
    with Restorer(model, options) as restorer:
        return run_jobs(restorer, jobs, progress=progress)


@dataclass
class Job:
    src: Path
    dst: Path
    compare: Path | None = None



def plan_jobs(src: Path, dst: Path, compare: bool, skip_existing: bool) -> list[Job]:
    """Files to process: one file, or every photo under a folder mirrored into ``dst``; every output path is
    checked before any work (one line and nothing written when something is wrong):

    * an output never replaces an input (paths resolved, so ``-o .``, ``./x.png`` and symlinks are caught), and
      no two outputs share a name (``x.png`` + ``x_compare.png`` with ``--compare``);
    * an output folder inside the input folder is refused (a run would replace inputs, the next one would read its
      own outputs); hidden files and folders (``.DS_Store``, macOS ``._IMG_0001.JPG``) are skipped;
    * the output folder (or where it would be created) is writable;
    * photos go to photo files; videos to ``.mp4``/``.mov``/``.mkv``/``.m4v``.
    """
    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise NafnetLitertError(f"input not found: {src}")
    src_r = src.resolve()
    if src.is_file():
        kind = src.suffix.lower()
        if kind not in PHOTO_SUFFIXES + VIDEO_SUFFIXES:
            raise NafnetLitertError(f"{src.name}: unsupported file type (photos: {', '.join(PHOTO_SUFFIXES)}; "
                                    f"videos: {', '.join(VIDEO_SUFFIXES)})")  # fmt: skip
        if dst.is_dir():
            dst = dst / src.name
        if dst.parent.exists() and not dst.parent.is_dir():
            raise NafnetLitertError(f"output folder {dst.parent} is a file, not a folder")
        if not dst.parent.is_dir():
            raise NafnetLitertError(f"output folder does not exist: {dst.parent}")
        if kind in PHOTO_SUFFIXES and dst.suffix.lower() not in PHOTO_SUFFIXES:
            raise NafnetLitertError(f"{dst.name}: a photo's output must be a photo file ({', '.join(PHOTO_SUFFIXES)})")
        if kind in VIDEO_SUFFIXES and dst.suffix.lower() not in VIDEO_OUT_SUFFIXES:
            raise NafnetLitertError(
                f"{dst.name}: a video's output must be {', '.join(VIDEO_OUT_SUFFIXES)} (H.264 with the audio kept)"
            )
        jobs = [Job(src, dst, _compare_path(dst) if compare and kind in PHOTO_SUFFIXES else None)]
    else:
        if dst.exists() and not dst.is_dir():
            raise NafnetLitertError(f"output for a folder must be a folder, and {dst} is a file")
        dst_r = dst.resolve()
        if dst_r == src_r:
            raise NafnetLitertError("output folder must differ from the input folder")
        if dst_r.is_relative_to(src_r):
            raise NafnetLitertError(
                f"output folder {dst} is inside the input folder {src}: choose one outside it (a run would replace "
                "inputs with outputs, and the next run would read its own outputs)"
            )
        files = [
            p for p in sorted(src.rglob("*"))
            if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES + VIDEO_SUFFIXES and not is_hidden(p, src)
        ]  # fmt: skip
        if not files:
            raise NafnetLitertError(
                f"no photos or videos in {src} ({', '.join(PHOTO_SUFFIXES + VIDEO_SUFFIXES)}; hidden files are skipped)"
            )
        jobs = []
        for f in files:
            out = dst / f.relative_to(src)
            if f.suffix.lower() in VIDEO_SUFFIXES:  # videos are deblurred too, into a container H.264 fits
                if out.suffix.lower() not in VIDEO_OUT_SUFFIXES:
                    out = out.with_suffix(".mp4")
                jobs.append(Job(f, out))
                continue
            jobs.append(Job(f, out, _compare_path(out) if compare else None))
    _check_clashes(jobs)
    check_writable(jobs[0].dst.parent if src.is_file() else dst)
    if skip_existing:
        jobs = [j for j in jobs if not j.dst.exists()]
    return jobs


def _check_clashes(jobs: list[Job]) -> None:
    inputs = {j.src.resolve(): j.src for j in jobs}
    written: dict[Path, str] = {}
    for j in jobs:
        for path, what in ((j.dst, f"the output of {j.src.name}"), (j.compare, f"the comparison of {j.src.name}")):
            if path is None:
                continue
            r = path.resolve()
            if r in inputs:
                raise NafnetLitertError(f"{what} would overwrite the input {inputs[r]}: choose another output")
            if r in written:
                raise NafnetLitertError(f"{path} would be both {written[r]} and {what}: choose another output")
            written[r] = what


def _compare_path(p: Path) -> Path:
    return p.with_name(f"{p.stem}_compare{p.suffix}")


@dataclass
class RunStats:
    images: int = 0
    tiles: int = 0
    seconds: float = 0.0
    #: (input, one-line reason) of every file that could not be deblurred; the others were finished.
    failed: list[tuple[Path, str]] = field(default_factory=list)
    #: Ray node ids that did the work (``--ray``).
    nodes: list[str] = field(default_factory=list)


def write_outputs(photo: Photo, out: Photo, job: Job) -> None:
    job.dst.parent.mkdir(parents=True, exist_ok=True)
    write_photo(out, job.dst)
    if job.compare:
        write_photo(side_by_side(photo, out), job.compare)


def failure_reason(e: BaseException) -> str:
    return describe(e)


def run_jobs(
    restorer: Restorer,
    jobs: list[Job],
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> RunStats:
    """Process ``jobs`` with decoding, inference and encoding overlapped: while photo i is restored, photo i+1
    is decoded and photo i-1 encoded on worker threads (Pillow, LiteRT and PyTorch release the GIL), so a folder
    runs at the speed of inference.

    One job: any failure is raised. Several: a file that cannot be read, restored or written is reported through
    ``log`` (default: the progress bar's stderr) and recorded in :attr:`RunStats.failed`, and the rest are
    finished."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    stats = RunStats()
    t0 = time.perf_counter()
    bar = tqdm(total=len(jobs), unit="img", disable=not progress, desc="deblur")
    say = log or (lambda m: tqdm.write(m, file=sys.stderr))
    single = len(jobs) == 1

    def failed(job: Job, e: BaseException) -> None:
        if single:  # one file: its failure is the run's, as one line that names the file
            reason = failure_reason(e)
            if isinstance(e, NafnetLitertError) and job.src.name in reason:
                raise e
            raise NafnetLitertError(reason if job.src.name in reason else f"{job.src.name}: {reason}") from e
        stats.failed.append((job.src, failure_reason(e)))
        say(f"skipped {job.src}: {failure_reason(e)}")

    photos = [j for j in jobs if j.src.suffix.lower() not in VIDEO_SUFFIXES]
    videos = [j for j in jobs if j.src.suffix.lower() in VIDEO_SUFFIXES]
    with ThreadPoolExecutor(max_workers=1) as reader, ThreadPoolExecutor(max_workers=1) as writer:
        pending = reader.submit(read_photo, photos[0].src, max_pixels) if photos else None
        writes = []
        for k, job in enumerate(photos):
            future = pending
            assert future is not None  # submitted for every photo, one step ahead
            pending = reader.submit(read_photo, photos[k + 1].src, max_pixels) if k + 1 < len(photos) else None
            try:
                photo = future.result()
                for note in photo.notes:
                    say(f"{job.src}: {note}")
                out = restorer.restore_photo(photo)
            except Exception as e:  # noqa: BLE001 - reported per file, the run goes on
                failed(job, e)
                bar.update(1)
                continue
            writes.append((job, writer.submit(write_outputs, photo, out, job)))
            stats.tiles += restorer.tiles_for(*photo.color.shape[:2])
            stats.images += 1
            bar.update(1)
            for item in [w for w in writes if w[1].done()]:
                writes.remove(item)
                _finish_write(item, stats, failed)
        for item in writes:
            _finish_write(item, stats, failed)
    for job in videos:
        from .video import deblur_video

        try:
            job.dst.parent.mkdir(parents=True, exist_ok=True)  # a video found in a sub-folder
            deblur_video(restorer, job.src, job.dst, progress=progress)
            stats.images += 1
        except Exception as e:  # noqa: BLE001
            failed(job, e)
        bar.update(1)
    bar.close()
    stats.seconds = time.perf_counter() - t0
    return stats


def _finish_write(item, stats: RunStats, failed) -> None:
    job, future = item
    try:
        future.result()
    except Exception as e:  # noqa: BLE001
        stats.images -= 1
        failed(job, e)
