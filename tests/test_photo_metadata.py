"""Colour metadata survives every writer: ICC and EXIF at 16 bits, CMYK profiles never pasted onto RGB, and an
RGBA photo written as JPEG shows white where it was transparent (never the colours under transparent pixels)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageCms

from nafnet_litert.io.image import read_photo, write_photo
from nafnet_litert.photo import Photo

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _exif(**tags) -> bytes:
    e = Image.Exif()
    for tag, value in tags.items():
        e[int(tag[1:])] = value
    return e.tobytes()


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_outputs_keep_icc_and_camera_tags(tmp_path, suffix):
    a = (np.random.default_rng(0).random((20, 30, 3)) * 65535).astype(np.uint16)
    exif = _exif(t271="Make Co", t272="Model 9", t306="2026:12:06 10:00:00")
    write_photo(Photo(a, None, SRGB, exif), tmp_path / f"x{suffix}")
    back = read_photo(tmp_path / f"x{suffix}")
    assert back.color.dtype == np.uint16 and np.array_equal(back.color, a)
    assert back.icc == SRGB
    e = Image.Exif()
    e.load(back.exif)
    assert (e.get(271), e.get(272), e.get(306)) == ("Make Co", "Model 9", "2026:12:06 10:00:00")
    if suffix == ".tif":  # descriptive tags only: no layout or writer tags of tifffile's own
        assert e.get(305) is None and e.get(270) is None


def test_rgba_to_jpeg_composites_on_white(tmp_path):
    color = np.zeros((8, 8, 3), np.uint8)
    color[..., 0] = 200  # red hidden under fully transparent pixels
    alpha = np.zeros((8, 8), np.uint8)
    alpha[:4] = 255  # the top half opaque
    write_photo(Photo(color, alpha), tmp_path / "x.jpg")
    out = np.asarray(Image.open(tmp_path / "x.jpg")).astype(int)
    assert np.abs(out[6:] - 255).max() <= 2  # transparent -> white
    assert np.abs(out[:2] - [200, 0, 0]).max() <= 6  # opaque -> its colour


def test_a_cmyk_profile_is_never_embedded_in_an_rgb_output(tmp_path):
    cmyk = Image.new("CMYK", (16, 12), (10, 200, 30, 5))
    bogus = b"\0" * 64 + b"not a usable CMYK profile" * 8
    cmyk.save(tmp_path / "c.jpg", icc_profile=bogus)
    assert Image.open(tmp_path / "c.jpg").info.get("icc_profile") == bogus
    photo = read_photo(tmp_path / "c.jpg")
    assert photo.icc is None and any("profile" in n for n in photo.notes)
    write_photo(photo, tmp_path / "out.png")
    assert Image.open(tmp_path / "out.png").info.get("icc_profile") is None


@pytest.mark.parametrize("suffix", [".png", ".webp"])
def test_an_animation_becomes_its_first_frame_with_a_note(tmp_path, suffix, small_exports):
    import subprocess
    import sys

    frames = [Image.new("RGB", (40, 32), c) for c in ((200, 0, 0), (0, 200, 0), (0, 0, 200))]
    src = tmp_path / f"anim{suffix}"
    extra = {"lossless": True} if suffix == ".webp" else {}
    frames[0].save(src, save_all=True, append_images=frames[1:], duration=100, loop=0, **extra)
    photo = read_photo(src)
    assert photo.notes == ["animated: frame 1 of 3 used (the output is a still)"]
    assert np.abs(photo.color.astype(int) - [200, 0, 0]).max() <= 2
    r = subprocess.run([sys.executable, "-m", "nafnet_litert.cli", "deblur", str(src), "-o", str(tmp_path / "o.png"),
                        "--model", str(small_exports["fp32"].model_path), "--quiet"], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "animated: frame 1 of 3 used" in r.stderr
