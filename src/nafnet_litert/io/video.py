"""Video, frame by frame, with its timing and its audio kept — through PyAV (FFmpeg's libraries, in its wheel).

* **Timing.** Every frame keeps its presentation timestamp, so a variable-frame-rate phone clip comes out with the
  same frame times, the same length, and its audio in sync (the audio packets are copied with their own timestamps;
  re-encoded to AAC only where the output container cannot hold the codec).
* **Upright.** A display rotation (portrait phone clips) is applied to the pixels, and the output carries none.
* **Verified.** :func:`write_video` renames its file into place only after the written file decodes to the same
  number of frames, with the same last timestamp.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ..errors import NafnetLitertError
from .files import atomic_path, disk_nearly_full

if TYPE_CHECKING:  # for the annotations only: PyAV loads on first use
    from av.container import InputContainer

_T = TypeVar("_T")

#: Container tags a deblurred video keeps: when and where it was shot, and with what (never layout tags such as
#: ``rotate``: the frames are written upright).
KEPT_TAGS = (
    "creation_time", "date", "location", "location-eng", "make", "model",
    "com.apple.quicktime.location.ISO6709", "com.apple.quicktime.creationdate", "com.apple.quicktime.make",
    "com.apple.quicktime.model", "com.android.manufacturer", "com.android.model",
)  # fmt: skip


@dataclass(frozen=True)
class VideoInfo:
    """What a writer needs to know about a source video."""

    width: int  #: upright (after the display rotation)
    height: int
    time_base: Fraction  #: unit of the frames' timestamps
    rate: Fraction  #: average frame rate (for the encoder's rate control and for frames without timestamps)
    frames: int  #: as the container's header states (0: it does not say)
    duration: float  #: seconds, as the container states (0: it does not say)
    rotation: int  #: degrees counter-clockwise the stored pixels are turned for display (known once decoded)
    audio: bool
    tags: dict[str, str] = field(default_factory=dict)
    #: ``duration`` is the container's (the video stream states none, as in Matroska): it may be another stream's
    container_length: bool = False

    @property
    def expected_frames(self) -> int:
        """The header's frame count, or one estimated from its duration (0: unknown)."""
        return self.frames or int(round(self.duration * float(self.rate)))


def _av():
    try:
        import av
    except ImportError:
        raise NafnetLitertError("video needs PyAV: pip install av") from None
    import av.error  # FFmpegError, by the module that defines it (the package re-exports it untyped)
    import av.logging

    av.logging.set_level(None)  # FFmpeg's own log lines are noise; its errors arrive as exceptions
    return av


def _why(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[-1][:160]


def _open_input(src: Path):
    av = _av()
    try:
        container = av.open(str(src), "r")
    except (OSError, av.error.FFmpegError, ValueError) as e:
        raise NafnetLitertError(f"{src.name}: not a readable video ({_why(e)})") from None
    if not container.streams.video:
        container.close()
        raise NafnetLitertError(f"{src.name}: not a readable video (no video stream)")
    return container


def probe(src: Path) -> VideoInfo:
    """The :class:`VideoInfo` of ``src``; one line when it is not a video FFmpeg can read."""
    container = _open_input(src)
    try:
        info = _info(container, src)
    finally:
        container.close()
    return _upright_info(info, src)


def _info(container, src: Path) -> VideoInfo:
    v = container.streams.video[0]
    rate = v.average_rate or v.guessed_rate or v.base_rate or Fraction(25)
    w, h = v.codec_context.width, v.codec_context.height
    if not w or not h:
        raise NafnetLitertError(f"{src.name}: not a readable video (no frame size)")
    duration = float(container.duration / 1_000_000) if container.duration else 0.0
    container_length = True
    if v.duration and v.time_base:
        duration, container_length = float(v.duration * v.time_base), False
    tags = {k: str(val) for k, val in container.metadata.items() if k in KEPT_TAGS and str(val).strip()}
    return VideoInfo(
        width=w, height=h, time_base=v.time_base or Fraction(1, 90000), rate=Fraction(rate), frames=v.frames or 0,
        duration=duration, rotation=0, audio=bool(container.streams.audio), tags=tags, container_length=container_length,
    )  # fmt: skip


def _upright(frame) -> np.ndarray:
    image = frame.to_ndarray(format="rgb24")
    turns = (int(round(getattr(frame, "rotation", 0) or 0)) // 90) % 4
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def read_video(src: Path) -> tuple[Generator[tuple[np.ndarray, int | None], None, None], VideoInfo]:
    """(iterator of (upright H x W x 3 uint8 frame, timestamp in ``info.time_base`` units or None), info) of
    ``src``, every frame as stored (no frame is duplicated or dropped to reach a constant rate). A stream that stops
    decoding part way raises a one-line "damaged" error naming the frame."""
    info = probe(src)
    return _decoded(src, lambda frame: (_upright(frame), frame.pts)), info


def _decoded(src: Path, each: Callable[[Any], _T]) -> Generator[_T, None, None]:
    """``each(frame)`` for every frame of ``src``'s video stream, in order (the file is opened now and closed when
    the iterator ends); a frame that does not decode raises the one-line "damaged" error naming it."""
    av = _av()
    container = _open_input(src)

    def frames():
        n = 0
        try:
            for frame in container.decode(video=0):
                item = each(frame)
                n += 1
                yield item
        except av.error.FFmpegError as e:
            raise NafnetLitertError(
                f"{src.name}: damaged video: frame {n + 1} does not decode ({_why(e)}); nothing was written"
            ) from None
        finally:
            container.close()

    return frames()


def _upright_info(info: VideoInfo, src: Path) -> VideoInfo:
    """``info`` with the upright size and the rotation, which only a decoded frame tells."""
    av = _av()
    try:
        with av.open(str(src), "r") as c:
            frame = next(iter(c.decode(video=0)), None)
    except (OSError, av.error.FFmpegError):
        frame = None
    if frame is None:
        return info
    rotation = (int(round(getattr(frame, "rotation", 0) or 0)) // 90 * 90) % 360
    w, h = (frame.height, frame.width) if rotation in (90, 270) else (frame.width, frame.height)
    return VideoInfo(**{**info.__dict__, "width": w, "height": h, "rotation": rotation})


def frame_times(src: Path) -> list[int | None]:
    """The timestamp of every frame :func:`read_video` yields, in order, decoding without converting pixels."""
    return list(_decoded(src, lambda frame: frame.pts))


def source_metadata(src: Path) -> dict[str, str]:
    """The :data:`KEPT_TAGS` of ``src``'s container (empty when none or unreadable)."""
    try:
        return probe(src).tags
    except NafnetLitertError:
        return {}


class _Timestamps:
    """Strictly increasing output timestamps: the source's, or the frame index at the average rate where a frame
    has none (an encoder refuses repeats)."""

    def __init__(self, info: VideoInfo):
        self.step = max(1, int(round(1 / (info.rate * info.time_base)))) if info.rate else 1
        self.last: int | None = None

    def __call__(self, pts: int | None) -> int:
        if pts is None:
            pts = 0 if self.last is None else self.last + self.step
        if self.last is not None and pts <= self.last:
            pts = self.last + 1
        self.last = pts
        return pts


def write_video(src: Path, dst: Path, info: VideoInfo, frames: Iterable[tuple[np.ndarray, int | None]]) -> int:
    """Encode ``frames`` ((H x W x 3 uint8, timestamp) in order, as :func:`read_video` yields them) into ``dst`` as
    H.264 with the source's timestamps, ``src``'s audio and its :data:`KEPT_TAGS`; atomically. The same frames
    always give the same file. Returns the frame count.

    Verified before it replaces anything: the written file must decode to as many frames, ending at the same
    timestamp (a full disk makes FFmpeg fail to write its index, which it does not always report). Odd sizes, which
    4:2:0 chroma cannot hold, are written in 4:4:4 at the input's size."""
    av = _av()
    n = 0
    last_time = 0.0
    with atomic_path(dst) as tmp:
        try:
            out = av.open(str(tmp), "w", format=_format(dst), options=_mux_options(dst, info))
        except (OSError, av.error.FFmpegError) as e:
            raise _write_failed(dst, tmp, f"cannot start the file: {_why(e)}") from None
        try:
            for k, v in info.tags.items():
                out.metadata[k] = v
            video = out.add_stream("libx264", rate=info.rate)
            video.width, video.height = info.width, info.height
            video.pix_fmt = "yuv420p" if info.width % 2 == 0 and info.height % 2 == 0 else "yuv444p"
            video.time_base = info.time_base
            video.codec_context.time_base = info.time_base
            video.codec_context.options = {"crf": "17", "preset": "medium", "threads": "2"}  # fixed: reproducible
            audio = _AudioCopy(src, out)
            stamp = _Timestamps(info)
            for image, pts in frames:
                if image.shape != (info.height, info.width, 3):
                    raise NafnetLitertError(
                        f"frame {n + 1} of {src.name} is {image.shape[1]}x{image.shape[0]}, "
                        f"not {info.width}x{info.height}"
                    )
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                frame.pts = stamp(pts)
                frame.time_base = info.time_base
                last_time = float(frame.pts * info.time_base)
                audio.mux_until(last_time)
                out.mux(video.encode(frame))
                n += 1
            out.mux(video.encode(None))
            audio.mux_until(None)
            out.close()
        except (OSError, av.error.FFmpegError) as e:
            _close_quietly(out)
            raise _write_failed(dst, tmp, f"FFmpeg failed: {_why(e)}") from None
        except BaseException:  # a failing frame source, Ctrl-C: stop, keep nothing
            _close_quietly(out)
            raise
        _verify(dst, tmp, n, last_time)
    return n


def _format(dst: Path) -> str:
    return {".mkv": "matroska", ".mov": "mov", ".m4v": "mp4"}.get(dst.suffix.lower(), "mp4")


def _mux_options(dst: Path, info: VideoInfo) -> dict[str, str]:
    if info.tags and _format(dst) in ("mp4", "mov"):
        return {"movflags": "+use_metadata_tags"}  # keys such as com.apple.quicktime.location.ISO6709
    return {}


class _AudioCopy:
    """``src``'s first audio stream into ``out``: packets copied with their timestamps where ``out``'s container
    can hold the codec, else decoded and re-encoded to AAC; muxed in step with the video (interleaved by time)."""

    def __init__(self, src: Path, out):
        av = _av()
        self.container: InputContainer | None = None
        self.packets: Iterator = iter(())
        self.pending = None
        try:
            c = av.open(str(src), "r")
        except (OSError, av.error.FFmpegError):
            return
        if not c.streams.audio:
            c.close()
            return
        self.container, self.out = c, out
        a = c.streams.audio[0]
        if a.codec_context.name in out.supported_codecs:
            self.stream = out.add_stream_from_template(a)
            self.packets = self._copied(c, a)
        else:
            self.stream = out.add_stream("aac", rate=a.codec_context.sample_rate or 48000)
            self.packets = self._reencoded(c, a)

    @staticmethod
    def _copied(c: InputContainer, a):
        for packet in c.demux(a):
            if packet.dts is None:  # the demuxer's end-of-stream marker
                continue
            yield packet

    def _reencoded(self, c: InputContainer, a):
        for packet in c.demux(a):
            for frame in packet.decode():
                frame.pts = None  # the encoder numbers samples itself; the stream starts where the source's does
                yield from self.stream.encode(frame)
        yield from self.stream.encode(None)

    @staticmethod
    def _time(packet) -> float:
        t = packet.pts if packet.pts is not None else packet.dts
        return float(t * packet.time_base) if t is not None and packet.time_base else 0.0

    def mux_until(self, seconds: float | None) -> None:
        """Mux every audio packet that starts before ``seconds`` (all that remain for None)."""
        while True:
            if self.pending is None:
                self.pending = next(self.packets, None)
                if self.pending is None:
                    if self.container is not None:
                        self.container.close()
                        self.container = None
                    return
            if seconds is not None and self._time(self.pending) > seconds:
                return
            packet, self.pending = self.pending, None
            packet.stream = self.stream
            self.out.mux(packet)


def _verify(dst: Path, tmp: Path, n: int, last_time: float) -> None:
    av = _av()
    written, end = 0, None
    try:
        with av.open(str(tmp), "r") as c:
            s = c.streams.video[0]
            for frame in c.decode(s):
                written += 1
                end = float(frame.pts * s.time_base) if frame.pts is not None and s.time_base else end
    except (OSError, av.error.FFmpegError, IndexError):
        pass
    if written != n:
        raise _write_failed(dst, tmp, f"the written file decodes to {written} of {n} frames")
    if n and end is not None and abs(end - last_time) > 1e-3:
        raise _write_failed(dst, tmp, f"the written file ends at {end:.3f} s, not {last_time:.3f} s")


def _close_quietly(out) -> None:
    try:
        out.close()
    except Exception:  # noqa: BLE001 - FFmpeg already failed; its first error is the one reported
        pass


def _write_failed(dst: Path, tmp: Path, why: str) -> NafnetLitertError:
    if disk_nearly_full(tmp):
        return NafnetLitertError(f"disk full writing {dst.name} ({why}); nothing was replaced")
    return NafnetLitertError(f"writing {dst.name} failed ({why}); nothing was replaced")


def _last_packet_end(src: Path) -> float:
    """Seconds at which the last packet of any stream of ``src`` ends (demuxed, not decoded; 0 when unreadable)."""
    av = _av()
    end = 0.0
    try:
        with av.open(str(src), "r") as c:
            for packet in c.demux():
                if packet.pts is not None and packet.time_base:
                    end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    except (OSError, av.error.FFmpegError):
        pass
    return end


def check_complete(src: Path, info: VideoInfo, last_pts: int | None, decoded: int) -> None:
    """A video of which no frame decodes, or whose frames stop well before the length its header states, is cut
    short or damaged: one line, nothing written. Judged by time, not by frame counts: a VFR clip, or an AVI whose
    header counts the placeholder frames of its gaps, decodes to fewer frames than its rate times its length, and
    is whole. ``decoded``: how many frames decoded; ``last_pts``: the last timestamp among them."""
    if decoded == 0:
        raise NafnetLitertError(f"{src.name}: damaged video: no frame decodes (cut short?); nothing was written")
    if not info.duration or last_pts is None or not info.rate:
        return
    end = float(last_pts * info.time_base)
    slack = max(2 / float(info.rate), 0.1 * info.duration)  # the last frame's own length, and rounding
    if end + slack < info.duration and info.audio and info.container_length:
        # a stated length that is the container's (Matroska keeps none per stream) may be the audio's: the file is
        # whole when its last packet, of any stream, reaches it
        end = max(end, _last_packet_end(src))
    if end + slack < info.duration:
        raise NafnetLitertError(
            f"{src.name}: damaged video: its frames stop at {end:.2f} s of {info.duration:.2f} s (cut short?); "
            "nothing was written"
        )
