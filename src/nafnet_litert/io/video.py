"""Video, frame by frame, with the audio track kept — through the ffmpeg binary that imageio-ffmpeg ships."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import NafnetLitertError
from .files import atomic_path


def _ffmpeg():
    try:
        import imageio_ffmpeg
    except ImportError:
        raise NafnetLitertError("video needs imageio-ffmpeg: pip install imageio-ffmpeg") from None
    return imageio_ffmpeg


def open_video(src: Path):
    """(frame iterator of H x W x 3 uint8, metadata) of ``src``; one line when it cannot be decoded."""
    imageio_ffmpeg = _ffmpeg()
    try:
        reader = imageio_ffmpeg.read_frames(str(src))
        meta = reader.__next__()
    except (OSError, RuntimeError, StopIteration) as e:
        raise NafnetLitertError(f"{src.name}: not a readable video ({str(e).strip().splitlines()[-1][:160]})") from None
    w, h = meta["size"]
    return (np.frombuffer(raw, np.uint8).reshape(h, w, 3) for raw in reader), meta


def write_video(src: Path, dst: Path, meta: dict, frames) -> int:
    """Encode ``frames`` (H x W x 3 uint8, in order) into ``dst`` as H.264 at ``src``'s frame rate, with ``src``'s
    audio re-encoded to AAC; atomically. The same frames always give the same file. Returns the frame count.

    Verified before it replaces anything: ffmpeg must finish, and the written file must decode with every frame
    (a full disk makes ffmpeg fail to write its index, which it does not always report). Odd sizes, which 4:2:0
    chroma cannot hold, are written in 4:4:4 at the input's size."""
    imageio_ffmpeg = _ffmpeg()
    w, h = meta["size"]
    fps = meta.get("fps") or 25
    has_audio = bool(meta.get("audio_codec"))
    pix_fmt = "yuv420p" if w % 2 == 0 and h % 2 == 0 else "yuv444p"
    tags = [arg for k, v in source_metadata(src).items() for arg in ("-metadata", f"{k}={v}")]
    if tags and dst.suffix.lower() in (".mp4", ".mov", ".m4v"):
        tags += ["-movflags", "+use_metadata_tags"]  # keys such as com.apple.quicktime.location.ISO6709
    n = 0
    with atomic_path(dst) as tmp:
        writer = imageio_ffmpeg.write_frames(
            tmp, (w, h), fps=fps, quality=8, macro_block_size=1, pix_fmt_out=pix_fmt, output_params=tags,
            audio_path=str(src) if has_audio else None, audio_codec="aac" if has_audio else None,
        )  # fmt: skip
        try:
            writer.send(None)
            for frame in frames:
                writer.send(np.ascontiguousarray(frame))
                n += 1
            writer.close()
        except (OSError, RuntimeError) as e:
            _close_quietly(writer)
            raise _write_failed(dst, tmp, f"ffmpeg failed: {str(e).strip().splitlines()[-1][:160]}") from None
        except BaseException:  # a failing frame source, Ctrl-C: stop ffmpeg, keep nothing
            _close_quietly(writer)
            raise
        try:
            written = imageio_ffmpeg.count_frames_and_secs(str(tmp))[0]
        except (OSError, RuntimeError):
            written = 0
        if written != n:
            raise _write_failed(dst, tmp, f"the written file decodes to {written} of {n} frames")
    return n


#: Container tags a deblurred video keeps: when and where it was shot, and with what (never layout tags such as
#: ``rotate``: the frames are written upright).
KEPT_TAGS = (
    "creation_time", "date", "location", "location-eng", "make", "model",
    "com.apple.quicktime.location.ISO6709", "com.apple.quicktime.creationdate", "com.apple.quicktime.make",
    "com.apple.quicktime.model", "com.android.manufacturer", "com.android.model",
)  # fmt: skip


def source_metadata(src: Path) -> dict[str, str]:
    """The :data:`KEPT_TAGS` of ``src``'s container (empty when none), read from the global ``Metadata:`` block that
    ffmpeg prints for its input (its ffmetadata dump leaves ``creation_time`` out)."""
    import subprocess

    ff = _ffmpeg().get_ffmpeg_exe()
    try:
        r = subprocess.run([ff, "-hide_banner", "-i", str(src)], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    out: dict[str, str] = {}
    inside = False
    for line in r.stderr.decode("utf-8", "replace").splitlines():
        if line.startswith("Input #0"):
            inside = False
        elif line.strip() == "Metadata:" and line.startswith("  ") and not line.startswith("    "):
            inside = True  # the container's own block (streams' blocks are indented further)
        elif inside and line.startswith("    ") and ":" in line:
            key, _, value = line.partition(":")  # "    creation_time   : 2024-..." (values may hold ':')
            key, value = key.strip(), value.strip()
            if key in KEPT_TAGS and value:
                out[key] = value
        elif inside:
            break
    return out


def _close_quietly(writer) -> None:
    try:
        writer.close()
    except Exception:  # noqa: BLE001 - ffmpeg already failed; its first error is the one reported
        pass


def _write_failed(dst: Path, tmp: Path, why: str) -> NafnetLitertError:
    import shutil

    try:
        full = shutil.disk_usage(tmp.parent).free < 4 << 20
    except OSError:
        full = False
    if full:
        return NafnetLitertError(f"disk full writing {dst.name} ({why}); nothing was replaced")
    return NafnetLitertError(f"writing {dst.name} failed ({why}); nothing was replaced")


def deblur_video(deb, src: Path, dst: Path, progress: bool = True) -> int:
    """Deblur every frame of ``src`` into ``dst`` (H.264, same fps, audio copied/re-encoded to AAC).

    Written to a temporary file and renamed when complete. Returns the number of frames.
    """
    from tqdm import tqdm

    frames, meta = open_video(src)
    fps = meta.get("fps") or 25
    n_est = int(round(meta.get("duration", 0) * fps)) or None
    bar = tqdm(frames, total=n_est, unit="frame", disable=not progress, desc=src.name, leave=False)
    seen = [0]

    def restored():
        for f in bar:
            seen[0] += 1
            yield deb.restore(f)  # uint8 in, uint8 out
        if n_est and seen[0] < 0.9 * n_est:  # the header promises more than decodes: cut short or damaged
            raise NafnetLitertError(
                f"{src.name}: damaged video: only {seen[0]} of about {n_est} frames decode (cut short?); "
                "nothing was written"
            )

    return write_video(src, dst, meta, restored())
