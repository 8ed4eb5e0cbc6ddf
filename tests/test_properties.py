"""Property-based: whatever image, checkpoint or model file a user has, the CLI either does the job right or says
why in one line (exit 2), the input is byte-identical afterwards, and no temporary file is left behind.

Generated cases are small (images up to 24 px a side, a width-8 network through PyTorch on 32 px tiles), so the
whole module runs in well under two minutes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from nafnet_litert.cli import main
from nafnet_litert.io.image import read_photo

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

#: Pillow modes and the formats that store them.
FORMATS = {
    "1": ("png", "tif"),
    "L": ("png", "jpg", "webp", "tif"),
    "LA": ("png", "tif"),
    "P": ("png", "tif"),
    "PT": ("png",),  # palette with a transparent index
    "RGB": ("png", "jpg", "webp", "tif"),
    "RGBA": ("png", "webp", "tif"),
    "I;16": ("png", "tif"),
    "CMYK": ("jpg", "tif"),
}


@pytest.fixture(scope="module")
def ckpt(small_checkpoint_file):
    return small_checkpoint_file


@st.composite
def pillow_images(draw):
    mode = draw(st.sampled_from(sorted(FORMATS)))
    fmt = draw(st.sampled_from(FORMATS[mode]))
    h, w = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        im = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    elif mode in ("P", "PT"):
        im = Image.fromarray(rng.integers(0, 16, (h, w), dtype=np.uint8), "L").convert("P")
        im.putpalette(list(rng.integers(0, 256, 48)))
        if mode == "PT":
            im.info["transparency"] = 3
    else:
        bands = {"1": 1, "L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "CMYK": 4}[mode]
        a = rng.integers(0, 256, (h, w, bands), dtype=np.uint8)
        im = Image.fromarray(a[:, :, 0] if bands == 1 else a, None if bands != 4 or mode == "RGBA" else "RGBA")
        if mode == "1":
            im = im.convert("1")
        elif mode == "CMYK":
            im = Image.frombytes("CMYK", (w, h), a.tobytes())
    orientation = draw(st.sampled_from([1, 1, 3, 6, 8]))
    icc = draw(st.sampled_from([None, b"not really an ICC profile, kept verbatim"]))
    return im, fmt, orientation, icc


def _save(im: Image.Image, path: Path, fmt: str, orientation: int, icc: bytes | None) -> None:
    kw = {}
    if orientation != 1 and fmt in ("jpg", "png", "webp", "tif"):
        exif = Image.Exif()
        exif[0x0112] = orientation
        kw["exif"] = exif.tobytes()
    if icc and fmt in ("png", "jpg", "tif"):
        kw["icc_profile"] = icc
    if "transparency" in im.info and fmt == "png":
        kw["transparency"] = im.info["transparency"]
    im.save(path, **kw)


def _expected_family(path: Path) -> tuple[int, bool, int]:
    """(colour channels, has alpha, bits) the output must keep: the package's own reader on the input."""
    ph = read_photo(path)
    return ph.color.shape[2], ph.alpha is not None, ph.bits


def _check_run(tmp_path: Path, src: Path, ckpt: Path, out_suffix: str) -> None:
    """Run ``deblur`` on a supported input: it must succeed (a reader that refuses every PNG fails here), keep the
    input untouched and leave no temporary file."""
    before = src.read_bytes()
    out = tmp_path / f"out{out_suffix}"
    err = io.StringIO()
    import contextlib

    with contextlib.redirect_stderr(err):
        rc = main(["deblur", str(src), "-o", str(out), "--model", str(ckpt), "--backend", "torch", "--tile", "32",
                   "--overlap", "8", "--quiet"])  # fmt: skip
    assert src.read_bytes() == before  # the input is never touched
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # no temporary file
    assert rc == 0, err.getvalue()
    channels, alpha, bits = _expected_family(src)
    got = read_photo(out)
    src_photo = read_photo(src)
    assert got.color.shape[:2] == src_photo.color.shape[:2]  # oriented size kept
    lossy_alpha = out_suffix in (".jpg",)
    assert got.color.shape[2] == channels
    if not lossy_alpha:
        assert (got.alpha is not None) == alpha
    if out_suffix in (".png", ".tif"):
        assert got.bits == bits


@SETTINGS
@given(case=pillow_images(), out=st.sampled_from([".png", ".tif", "same"]))
def test_every_pillow_image_mode_deblurs(tmp_path_factory, ckpt, case, out):
    im, fmt, orientation, icc = case
    d = tmp_path_factory.mktemp("img")
    src = d / f"in.{fmt}"
    _save(im, src, fmt, orientation, icc)
    _check_run(d, src, ckpt, f".{fmt}" if out == "same" else out)  # every mode the README lists


@SETTINGS
@given(
    dtype=st.sampled_from(["uint8", "uint16", "float32"]),
    samples=st.sampled_from([1, 3, 4]),
    planar=st.booleans(),
    compression=st.sampled_from([None, "lzw", "zlib", "packbits"]),
    pages=st.integers(1, 3),
    h=st.integers(1, 20),
    w=st.integers(1, 20),
    seed=st.integers(0, 2**16),
)
def test_every_tiff_layout_deblurs(tmp_path_factory, ckpt, dtype, samples, planar, compression,
                                                      pages, h, w, seed):  # fmt: skip
    rng = np.random.default_rng(seed)
    shape = (pages, h, w, samples)
    if dtype == "float32":
        a = rng.random(shape, dtype=np.float32)
    else:
        a = rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    if samples == 1:
        a = a[..., 0]
    elif planar:
        a = np.moveaxis(a, -1, 1)
    d = tmp_path_factory.mktemp("tif")
    src = d / "in.tif"
    kw = {"photometric": "rgb" if samples >= 3 else "minisblack"}
    if samples >= 3 and planar:
        kw["planarconfig"] = "separate"
    if samples == 4:
        kw["extrasamples"] = ["unassalpha"]
    if compression == "packbits" and dtype != "uint8":
        compression = None
    tifffile.imwrite(src, a if pages > 1 else a[0], compression=compression, **kw)
    _check_run(d, src, ckpt, ".png")  # 8/16-bit and [0, 1] float, 1/3/4 samples: all supported


def _mutations(data: bytes, rng: np.random.Generator, n: int) -> list[bytes]:
    out = []
    for i in range(n):
        b = bytearray(data)
        if i % 2 == 0:
            b = b[: int(rng.integers(0, len(b)))]  # cut
        else:
            for pos in rng.integers(0, len(b), 8):  # flip
                b[pos] ^= 0xFF
        out.append(bytes(b))
    return out


def test_damaged_checkpoints_and_models_are_one_line(tmp_path, ckpt, small_exports, capsys):
    """A small fuzz corpus: checkpoint and .tflite files with bytes cut or flipped. Loading a checkpoint gives a
    checkpoint or a CheckpointError; auditing a model exits 0, 1 or 2 with no traceback (static checks only: a
    damaged flatbuffer is never handed to the native runtime here)."""
    import nafnet_litert as nl
    from nafnet_litert.errors import CheckpointError

    rng = np.random.default_rng(0)
    for i, data in enumerate(_mutations(ckpt.read_bytes(), rng, 24)):
        p = tmp_path / f"c{i}.safetensors"
        p.write_bytes(data)
        try:
            nl.load(str(p))
        except CheckpointError as e:
            assert str(e) and "\n" not in str(e)
    model = small_exports["fp32"].model_path
    for i, data in enumerate(_mutations(model.read_bytes(), rng, 24)):
        p = tmp_path / f"m{i}.tflite"
        p.write_bytes(data)
        rc = main(["audit", str(p), "--json"])
        captured = capsys.readouterr()
        assert rc in (0, 1, 2) and "Traceback" not in captured.err
        if rc == 2:
            assert len([ln for ln in captured.err.splitlines() if ln.strip()]) == 1
