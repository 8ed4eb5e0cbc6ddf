"""Hostile but realistic media, drawn by Hypothesis: damaged EXIF in camera JPEGs, and videos in every container,
size, rotation and timing a phone or an editor writes (VFR, odd sizes, with and without audio, cut short).

Oracles: Pillow (pixels, EXIF), and the FFmpeg command line from imageio-ffmpeg (frame times through ``showinfo``,
upright size through its autorotation) — a separate FFmpeg build from the PyAV libraries the package decodes with.
"""

from __future__ import annotations

import io
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from nafnet_litert.errors import NafnetLitertError
from nafnet_litert.io.image import read_photo, write_photo

ORIENTATION = 274


# ------------------------------------------------------------------------------------------------ EXIF
def _camera_jpeg() -> bytes:
    e = Image.Exif()
    e[ORIENTATION] = 6  # a portrait phone photo
    e[271], e[272], e[306] = "Make Co", "Model 9", "2026:12:06 10:00:00"
    e[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}  # GPS
    buf = io.BytesIO()
    rgb = (np.random.default_rng(0).random((24, 32, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(buf, "JPEG", exif=e.tobytes(), quality=95)
    return buf.getvalue()


CAMERA = _camera_jpeg()
_AT = CAMERA.index(b"Exif\0\0")
EXIF_SPAN = (_AT + 6, _AT - 2 + int.from_bytes(CAMERA[_AT - 2 : _AT], "big"))  # the TIFF structure inside APP1


def _pillow_upright(path: Path) -> np.ndarray | None:
    """Pillow's own reading of the orientation, where it can make one; None where its EXIF parser gives up."""
    try:
        with Image.open(path) as im:
            o = im.getexif().get(ORIENTATION, 1)
            if not isinstance(o, int) or o not in range(1, 9):
                return np.asarray(im.convert("RGB"))
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except Exception:  # noqa: BLE001 - the oracle failing is no verdict on us
        return None


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mutations=st.lists(st.tuples(st.integers(*EXIF_SPAN).map(lambda i: min(i, EXIF_SPAN[1] - 1)),
                                 st.integers(0, 255)), min_size=1, max_size=6),  # fmt: skip
)
def test_a_damaged_exif_never_costs_the_photo(tmp_path_factory, mutations):
    """Any byte damage inside the EXIF block of a viewable JPEG: the photo still reads, with the pixels Pillow
    decodes (upright by the orientation, where it is a valid one), and writes to every format with its EXIF
    reading back at orientation 1."""
    d = tmp_path_factory.mktemp("exif")
    data = bytearray(CAMERA)
    for i, v in mutations:
        data[i] = v
    src = d / "camera.jpg"
    src.write_bytes(bytes(data))
    photo = read_photo(src)  # never an exception: the pixels are intact
    expected = _pillow_upright(src)
    if expected is not None:
        assert np.array_equal(photo.color, expected)
    for suffix in (".jpg", ".png", ".webp", ".tif"):
        out = d / f"out{suffix}"
        write_photo(photo, out)
        with Image.open(out) as im:
            assert im.size == (photo.color.shape[1], photo.color.shape[0])
            assert im.getexif().get(ORIENTATION, 1) == 1  # the pixels are upright: never turned twice


def _unwritable_exif_tag() -> bytes:
    """The camera JPEG with the first single zeroed byte that leaves a tag Pillow reads but cannot write back (a
    mistyped tag: struct.error in ``Exif.tobytes``, the traceback this guards against)."""
    for i in range(*EXIF_SPAN):
        data = bytearray(CAMERA)
        data[i] = 0
        try:
            with Image.open(io.BytesIO(bytes(data))) as im:
                im.getexif().tobytes()
        except Exception:  # noqa: BLE001
            return bytes(data)
    raise AssertionError("no single byte breaks Pillow's EXIF writer")


def test_a_damaged_exif_tag_is_dropped_with_a_note(tmp_path):
    src = tmp_path / "camera.jpg"
    src.write_bytes(_unwritable_exif_tag())
    photo = read_photo(src)
    assert any("damaged EXIF" in n for n in photo.notes), photo.notes
    write_photo(photo, tmp_path / "out.jpg")
    with Image.open(tmp_path / "out.jpg") as im:
        assert im.getexif().get(272) == "Model 9"  # the tags that can be written back survive


# ------------------------------------------------------------------------------------------------ video
def _ff() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _frame_times(path: Path) -> list[float]:
    """Every frame's presentation time as the FFmpeg command line sees it (no frame dropped or duplicated)."""
    r = subprocess.run([_ff(), "-hide_banner", "-i", str(path), "-map", "0:v:0", "-fps_mode", "passthrough",
                        "-vf", "showinfo", "-f", "null", "-"], capture_output=True, text=True, check=True)  # fmt: skip
    return [float(t) for t in re.findall(r"pts_time:\s*([-0-9.e]+)", r.stderr)]


def _upright_size(path: Path) -> tuple[int, int]:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    size = tuple(next(reader)["size"])
    reader.close()
    return size


def _audio_span(path: Path) -> tuple[float, float] | None:
    """(start, end) seconds of the first audio stream, from its decoded samples; None without audio."""
    import av

    with av.open(str(path)) as c:
        if not c.streams.audio:
            return None
        a = c.streams.audio[0]
        start, samples, rate = None, 0, None
        for frame in c.decode(a):
            if start is None and frame.pts is not None:
                start = float(frame.pts * frame.time_base)
            samples += frame.samples
            rate = frame.sample_rate
        return (start or 0.0, (start or 0.0) + samples / rate)


def make_video(path: Path, size: tuple[int, int], rate: int, seconds: float, vfr: bool, audio: str | None,
               rotation: int) -> Path:  # fmt: skip
    """A test clip: ``testsrc``, VFR when asked (every frame for the first half, every other one after), an
    optional sine track in ``audio``'s codec, and a display rotation."""
    w, h = size
    args = [_ff(), "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={w}x{h}:rate={rate}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", audio]
    if vfr:
        half = int(rate * seconds / 2)
        args += ["-vf", f"select='lt(n\\,{half})+not(mod(n\\,2))'", "-fps_mode", "vfr"]
    pix = "yuv420p" if w % 2 == 0 and h % 2 == 0 else "yuv444p"
    codec = ["-c:v", "mpeg4", "-q:v", "3"] if path.suffix == ".avi" else ["-c:v", "libx264", "-pix_fmt", pix]
    if path.suffix == ".avi":
        pix = "yuv420p"
        if w % 2 or h % 2:
            raise ValueError("mpeg4 in AVI needs even sizes")
    plain = path.with_name(f"plain-{path.name}")
    subprocess.run(args + codec + [str(plain)], check=True)
    if rotation:
        subprocess.run([_ff(), "-v", "error", "-y", "-display_rotation", str(rotation), "-i", str(plain), "-c",
                        "copy", str(path)], check=True)  # fmt: skip
        plain.unlink()
    else:
        plain.rename(path)
    return path


@pytest.fixture(scope="module")
def small_restorer(small_exports):
    import nafnet_litert as nl

    with nl.Restorer(str(small_exports["fp32"].model_path)) as r:
        yield r


CONTAINERS = {  # input suffix -> (audio codecs that container holds, output suffix)
    ".mp4": (("aac",), ".mp4"),
    ".mov": (("aac", "pcm_s16le"), ".mov"),
    ".mkv": (("aac", "pcm_s16le", "flac"), ".mkv"),
    ".avi": (("pcm_s16le",), ".mp4"),
}


@st.composite
def clips(draw):
    suffix = draw(st.sampled_from(sorted(CONTAINERS)))
    even = suffix == ".avi"
    w = draw(st.integers(8, 36)) * (2 if even else 1) + (0 if even else 0)
    h = draw(st.integers(8, 36)) * (2 if even else 1)
    audio = draw(st.none() | st.sampled_from(CONTAINERS[suffix][0]))
    return dict(suffix=suffix, size=(w, h), rate=draw(st.sampled_from([10, 24, 30])), vfr=draw(st.booleans()),
                audio=audio, rotation=0 if suffix == ".avi" else draw(st.sampled_from([0, 90, 180, 270])))  # fmt: skip


@pytest.mark.slow
@settings(max_examples=14, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])  # fmt: skip
@given(clip=clips())
# found by this test: Matroska states only the container's length, here the AAC track's, past the VFR video's end
@example(clip={"suffix": ".mkv", "size": (8, 8), "rate": 10, "vfr": True, "audio": "aac", "rotation": 0})
def test_every_video_keeps_its_frames_timing_size_and_audio(tmp_path_factory, small_restorer, clip):
    from nafnet_litert.restore.video import deblur_video

    d = tmp_path_factory.mktemp("clip")
    src = make_video(d / f"in{clip['suffix']}", clip["size"], clip["rate"], 0.6, clip["vfr"], clip["audio"],
                     clip["rotation"])  # fmt: skip
    dst = d / f"out{CONTAINERS[clip['suffix']][1]}"
    n = deblur_video(small_restorer, src, dst, progress=False)
    times_in, times_out = _frame_times(src), _frame_times(dst)
    assert n == len(times_in) == len(times_out)
    assert np.abs(np.subtract(times_in, times_out)).max() < 1e-3, (times_in, times_out)
    assert _upright_size(dst) == _upright_size(src)
    span_in, span_out = _audio_span(src), _audio_span(dst)
    assert (span_in is None) == (span_out is None)
    if span_in is not None:  # in sync: starts and ends within one frame of the source's
        assert abs(span_in[0] - span_out[0]) < 1 / clip["rate"], (span_in, span_out)
        assert abs(span_in[1] - span_out[1]) < 1 / clip["rate"], (span_in, span_out)


@pytest.mark.slow
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                HealthCheck.function_scoped_fixture])  # fmt: skip
@given(cut=st.floats(0.25, 0.8), audio=st.booleans())
@example(cut=0.3125, audio=False)  # found by this test: the index survives, no frame does (0 frames, no error)
def test_a_cut_video_is_damaged_and_writes_nothing(tmp_path_factory, small_restorer, cut, audio):
    from nafnet_litert.restore.video import deblur_video

    d = tmp_path_factory.mktemp("cut")
    src = make_video(d / "in.mp4", (32, 24), 30, 1.0, False, "aac" if audio else None, 0)
    front = d / "front.mp4"  # the index first, as phones and uploads write it: a cut file still opens
    subprocess.run([_ff(), "-v", "error", "-i", str(src), "-c", "copy", "-movflags", "+faststart", str(front)],
                   check=True)  # fmt: skip
    data = front.read_bytes()
    damaged = d / "cut.mp4"
    damaged.write_bytes(data[: int(len(data) * cut)])
    dst = d / "out.mp4"
    with pytest.raises(NafnetLitertError, match="damaged|not a readable video"):
        deblur_video(small_restorer, damaged, dst, progress=False)
    assert not dst.exists() and [p.name for p in d.iterdir() if p.name.startswith(".")] == []


def test_vfr_with_audio_keeps_length_and_sync(tmp_path, small_exports):
    """The issue's case: 2.00 s and 45 VFR frames (30 fps, then 15) with audio; through the CLI."""
    import sys

    src = make_video(tmp_path / "phone.mp4", (96, 64), 30, 2, True, "aac", 0)
    assert len(_frame_times(src)) == 45
    out = tmp_path / "out.mp4"
    r = subprocess.run([sys.executable, "-m", "nafnet_litert.cli", "deblur", "--quiet", str(src), "-o", str(out), "--model",
                        str(small_exports["fp32"].model_path)], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert np.abs(np.subtract(_frame_times(src), _frame_times(out))).max() < 1e-3
    (a0, a1), (b0, b1) = _audio_span(src), _audio_span(out)
    assert abs(a0 - b0) < 1 / 30 and abs(a1 - b1) < 1 / 30
