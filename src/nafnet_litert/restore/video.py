"""Deblurring a video: every decoded frame through a :class:`~.restorer.Restorer`, encoded again with its own
timestamp and the source's audio.

It lives in ``restore`` because it restores; decoding, encoding, the audio and the completeness check stay in
:mod:`nafnet_litert.io.video`, which knows nothing of models.
"""

from __future__ import annotations

from pathlib import Path

from ..io.video import check_complete, read_video, write_video


def deblur_video(deb, src: Path, dst: Path, progress: bool = True) -> int:
    """Deblur every frame of ``src`` into ``dst`` with ``deb`` (a :class:`~.restorer.Restorer`): H.264 with the
    source's frame times, audio kept.

    Written to a temporary file and renamed when complete and verified. Returns the number of frames.
    """
    from tqdm import tqdm

    frames, info = read_video(src)
    expected = info.expected_frames
    bar = tqdm(frames, total=expected or None, unit="frame", disable=not progress, desc=src.name, leave=False)
    last: list[int | None] = [None]

    def restored():
        n = 0
        for image, pts in bar:
            last[0] = pts if pts is not None else last[0]
            n += 1
            yield deb.restore(image), pts  # uint8 in, uint8 out
        check_complete(src, info, last[0], n)

    return write_video(src, dst, info, restored())
