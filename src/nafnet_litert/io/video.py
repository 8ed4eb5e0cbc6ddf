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
    audio re-encoded to AAC; atomically. The same frames always give the same file. Returns the frame count."""
    imageio_ffmpeg = _ffmpeg()
    w, h = meta["size"]
    fps = meta.get("fps") or 25
    has_audio = bool(meta.get("audio_codec"))
    n = 0
    with atomic_path(dst) as tmp:
        writer = imageio_ffmpeg.write_frames(
            tmp, (w, h), fps=fps, quality=8, macro_block_size=1,
            audio_path=str(src) if has_audio else None, audio_codec="aac" if has_audio else None,
        )  # fmt: skip
        writer.send(None)
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
            n += 1
        writer.close()
    return n


def deblur_video(deb, src: Path, dst: Path, progress: bool = True) -> int:
    """Deblur every frame of ``src`` into ``dst`` (H.264, same fps, audio copied/re-encoded to AAC).

    Written to a temporary file and renamed when complete. Returns the number of frames.
    """
    from tqdm import tqdm

    frames, meta = open_video(src)
    fps = meta.get("fps") or 25
    n_est = int(round(meta.get("duration", 0) * fps)) or None
    bar = tqdm(frames, total=n_est, unit="frame", disable=not progress, desc=src.name, leave=False)
    return write_video(src, dst, meta, (deb.restore(f) for f in bar))  # uint8 in, uint8 out
