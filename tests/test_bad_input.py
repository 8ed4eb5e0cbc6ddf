"""Nothing a user feeds the CLI loses data or ends in a traceback (issue #13's table, row by row).

Every refusal is one line on stderr with exit status 2, before any work, and leaves every file as it was. The CLI
runs in-process (``cli.main``) except where the real process is the point (SIGTERM)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from nafnet_litert.cli import main
from nafnet_litert.io.image import read_photo

from .conftest import photo_array


@pytest.fixture(scope="module")
def ckpt(small_checkpoint_file):
    return small_checkpoint_file


def _fast(ckpt) -> list[str]:
    return ["--model", str(ckpt), "--backend", "torch", "--tile", "32", "--overlap", "8", "--quiet"]


def _u8(name="astronaut.png", size=(40, 56), offset=(100, 120)) -> np.ndarray:
    return (photo_array(name, size, offset) * 255).round().astype(np.uint8)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _refused(capsys, args, message) -> str:
    """``args`` exits 2 with exactly one line on stderr containing ``message``."""
    assert main(args) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def unwritable(tmp_path):
    """A folder nobody may create files in: chmod 555 for a normal user; /sys for root (who ignores modes)."""
    if os.geteuid() == 0:
        yield Path("/sys")
        return
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    yield d
    d.chmod(0o755)


# ------------------------------------------------------------------ rows 1-4: outputs never replace inputs
def test_row1_output_that_is_the_input_is_refused(tmp_path, ckpt, capsys, monkeypatch):
    d = tmp_path / "d"
    d.mkdir()
    Image.fromarray(_u8()).save(d / "p.png")
    (d / "link.png").symlink_to(d / "p.png")
    before = _snapshot(d)
    _refused(capsys, ["deblur", str(d / "p.png"), "-o", str(d / "p.png"), *_fast(ckpt)], "would overwrite the input")
    monkeypatch.chdir(d)
    _refused(capsys, ["deblur", "p.png", "-o", ".", *_fast(ckpt)], "would overwrite the input")
    _refused(capsys, ["deblur", "p.png", "-o", "./sub/../p.png", *_fast(ckpt)], "output folder does not exist")
    _refused(capsys, ["deblur", "p.png", "-o", "link.png", *_fast(ckpt)], "would overwrite the input")
    clip = d / "clip.mp4"
    clip.write_bytes(b"not decoded: refused before")
    _refused(capsys, ["deblur", "clip.mp4", "-o", "clip.mp4", *_fast(ckpt)], "would overwrite the input")
    clip.unlink()
    assert _snapshot(d) == before


def test_rows2_3_output_folder_inside_the_input_folder_is_refused(tmp_path, ckpt, capsys):
    nest = tmp_path / "nest"
    (nest / "sub").mkdir(parents=True)
    Image.fromarray(_u8()).save(nest / "a.png")
    Image.fromarray(_u8("chelsea.png")).save(nest / "sub" / "a.png")
    before = _snapshot(nest)
    for out in ("sub", "out"):
        _refused(capsys, ["deblur", str(nest), "-o", str(nest / out), *_fast(ckpt)], "inside the input folder")
    assert _snapshot(nest) == before


def test_row4_compare_names_that_clash_are_refused(tmp_path, ckpt, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(_u8()).save(src / "x.png")
    Image.fromarray(_u8("chelsea.png")).save(src / "x_compare.png")
    before = _snapshot(src)
    _refused(capsys, ["deblur", str(src), "-o", str(tmp_path / "out"), "--compare", *_fast(ckpt)], "would be both")
    assert not (tmp_path / "out").exists() and _snapshot(src) == before
    # a single file whose comparison would land on an input
    _refused(capsys, ["deblur", str(src / "x_compare.png"), "-o", str(src / "x.png"), "--compare", *_fast(ckpt)],
             "would overwrite the input")  # fmt: skip
    assert _snapshot(src) == before


# ------------------------------------------------------------------ row 5: the user's umask, a replaced file's mode
def test_row5_outputs_get_the_umask_and_replaced_files_keep_their_mode(tmp_path, ckpt):
    Image.fromarray(_u8()).save(tmp_path / "p.png")
    old = os.umask(0o022)
    try:
        assert main(["deblur", str(tmp_path / "p.png"), "-o", str(tmp_path / "new.png"), *_fast(ckpt)]) == 0
        assert stat.S_IMODE((tmp_path / "new.png").stat().st_mode) == 0o644
        (tmp_path / "new.png").chmod(0o640)
        assert main(["deblur", str(tmp_path / "p.png"), "-o", str(tmp_path / "new.png"), *_fast(ckpt)]) == 0
        assert stat.S_IMODE((tmp_path / "new.png").stat().st_mode) == 0o640
        os.umask(0o077)
        assert main(["deblur", str(tmp_path / "p.png"), "-o", str(tmp_path / "private.png"), *_fast(ckpt)]) == 0
        assert stat.S_IMODE((tmp_path / "private.png").stat().st_mode) == 0o600
    finally:
        os.umask(old)


# ------------------------------------------------------------------ rows 6-11: one decoding policy
def test_row6_16_bit_gray_png_is_written_16_bit(tmp_path, ckpt):
    import png

    a = np.round(photo_array("camera.png", (40, 48), (200, 200))[:, :, 0] * 65535).astype(np.uint16)
    src = tmp_path / "g16.png"
    Image.fromarray(a).save(src)  # Pillow writes 16-bit gray (mode I;16)
    assert main(["deblur", str(src), "-o", str(tmp_path / "out.png"), *_fast(ckpt)]) == 0
    w, h, _, info = png.Reader(filename=str(tmp_path / "out.png")).asDirect()
    assert (w, h, info["bitdepth"], info["planes"]) == (48, 40, 16, 1)
    tif = tmp_path / "g16.tif"
    tifffile.imwrite(tif, a)
    assert main(["deblur", str(tif), "-o", str(tmp_path / "from_tif.png"), *_fast(ckpt)]) == 0
    assert png.Reader(filename=str(tmp_path / "from_tif.png")).asDirect()[3]["bitdepth"] == 16


def test_row7_multipage_and_planar_tiff(tmp_path, ckpt, capsys):
    rgb16 = np.round(photo_array("coffee.png", (40, 48), (100, 100)) * 65535).astype(np.uint16)
    pages = tmp_path / "pages.tif"
    tifffile.imwrite(pages, np.stack([rgb16, rgb16[::-1], rgb16[:, ::-1]]), photometric="rgb")
    ph = read_photo(pages)
    assert np.array_equal(ph.color, rgb16) and ph.notes == ["page 1 of 3 used"]
    assert main(["deblur", str(pages), "-o", str(tmp_path / "p.png"), *_fast(ckpt)]) == 0
    assert "page 1 of 3 used" in capsys.readouterr().err
    planar = tmp_path / "planar.tif"
    tifffile.imwrite(planar, np.moveaxis(rgb16, -1, 0), photometric="rgb", planarconfig="separate")
    assert np.array_equal(read_photo(planar).color, rgb16)


@pytest.mark.parametrize("compression", ["lzw", "zlib", "jpeg", "packbits"])
def test_row8_compressed_tiffs_are_read(tmp_path, compression):
    a = _u8("chelsea.png", (48, 64), (50, 80))
    p = tmp_path / f"c_{compression}.tif"
    tifffile.imwrite(p, a, photometric="rgb", compression=compression)
    got = read_photo(p).color
    ref = np.asarray(Image.open(p).convert("RGB"))  # Pillow as the independent reader
    assert got.shape == a.shape and np.abs(got.astype(int) - ref).max() <= (8 if compression == "jpeg" else 0)


def test_rows9_10_tiff_outputs_are_valid_and_correct(tmp_path, ckpt):
    a = _u8("chelsea.png", (48, 64), (50, 80))
    planar = tmp_path / "planar8.tif"
    tifffile.imwrite(planar, np.moveaxis(a, -1, 0), photometric="rgb", planarconfig="separate")
    assert np.array_equal(read_photo(planar).color, a)
    pred = tmp_path / "pred.tif"
    tifffile.imwrite(pred, a, photometric="rgb", compression="lzw", predictor=True,
                     extratags=[(0x010F, "s", 0, "TestCam", True)])  # fmt: skip
    g32 = tmp_path / "float_gray.tif"
    tifffile.imwrite(g32, photo_array("camera.png", (48, 64), (100, 100))[:, :, 0])
    for src in (planar, pred, g32):
        out = tmp_path / f"out_{src.stem}.tif"
        assert main(["deblur", str(src), "-o", str(out), *_fast(ckpt)]) == 0
        with tifffile.TiffFile(out) as tf:  # tifffile and Pillow both read it, with the right layout
            page = tf.pages[0]
            data = page.asarray()
            assert page.tags.get("Predictor") is None or page.tags["Predictor"].value == 1
        pil = np.asarray(Image.open(out))
        assert data.shape[:2] == (48, 64) and pil.shape[:2] == (48, 64)
    assert Image.open(tmp_path / "out_pred.tif").getexif().get(0x010F) == "TestCam"  # descriptive tag kept
    # the planar input gives exactly what the same pixels stored contiguously give (not stripes)
    contiguous = tmp_path / "contiguous.png"
    Image.fromarray(a).save(contiguous)
    assert main(["deblur", str(contiguous), "-o", str(tmp_path / "out_contiguous.tif"), *_fast(ckpt)]) == 0
    assert np.array_equal(read_photo(tmp_path / "out_planar8.tif").color,
                          read_photo(tmp_path / "out_contiguous.tif").color)  # fmt: skip


def test_row11_float_tiff_is_scaled_by_its_range(tmp_path, ckpt, capsys):
    f = photo_array("coffee.png", (40, 48), (100, 100)).astype(np.float32)
    p = tmp_path / "f32.tif"
    tifffile.imwrite(p, f, photometric="rgb")
    ph = read_photo(p)
    assert ph.color.dtype == np.uint16 and np.abs(ph.color / 65535.0 - f).max() <= 1 / 65535
    assert main(["deblur", str(p), "-o", str(tmp_path / "f.png"), *_fast(ckpt)]) == 0
    assert read_photo(tmp_path / "f.png").color.mean() > 1000  # not black
    bad = tmp_path / "hdr.tif"
    tifffile.imwrite(bad, f * 10, photometric="rgb")
    _refused(capsys, ["deblur", str(bad), "-o", str(tmp_path / "h.png"), *_fast(ckpt)], "must be in [0, 1]")


# ------------------------------------------------------------------ rows 12-13: folder runs
def test_row12_13_folder_reports_bad_files_skips_hidden_and_finishes(tmp_path, ckpt, capsys):
    src = tmp_path / "in"
    (src / ".git").mkdir(parents=True)
    for name in ("a.png", "c.png"):
        Image.fromarray(_u8()).save(src / name)
    (src / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (src / "._IMG_0001.JPG").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (src / ".DS_Store").write_bytes(b"junk")
    Image.fromarray(_u8()).save(src / ".git" / "hidden.png")
    out = tmp_path / "out"
    assert main(["deblur", str(src), "-o", str(out), *_fast(ckpt)]) == 2
    err = capsys.readouterr().err
    assert sorted(p.name for p in out.rglob("*")) == ["a.png", "c.png"]
    assert "b.png" in err and "1 of 3 file(s) failed" in err and "Traceback" not in err


# ------------------------------------------------------------------ rows 14, 19: unwritable or impossible outputs
def test_row14_unwritable_outputs_are_refused_before_any_work(tmp_path, ckpt, unwritable, capsys, monkeypatch):
    Image.fromarray(_u8()).save(tmp_path / "p.png")
    _refused(capsys, ["deblur", str(tmp_path / "p.png"), "-o", str(unwritable / "x.png"), *_fast(ckpt)], "cannot write")
    _refused(capsys, ["deblur", str(tmp_path / "p.png"), "-o", str(unwritable / "d" / "x.png"), *_fast(ckpt)],
             "output folder does not exist")  # fmt: skip
    t0 = time.perf_counter()
    _refused(capsys, ["convert", str(ckpt), "-o", str(unwritable / "m.tflite")], "cannot write")
    assert time.perf_counter() - t0 < 5  # before the conversion, not after it
    data = tmp_path / "data"
    for sub in ("blur", "sharp"):
        (data / sub).mkdir(parents=True)
        Image.fromarray(_u8()).save(data / sub / "x.png")
    _refused(capsys, ["eval", "--data", str(data), "-o", str(unwritable), *_fast(ckpt)], "cannot write")
    monkeypatch.setenv("NAFNET_LITERT_CACHE", str(unwritable / "cache"))
    _refused(capsys, ["deblur", str(tmp_path / "p.png"), "-o", str(tmp_path / "y.png"), "--model", str(ckpt),
                      "--quiet"], "model cache")  # fmt: skip
    assert not (tmp_path / "y.png").exists()


def test_row14_audit_report_folder_is_checked(tmp_path, small_exports, unwritable, capsys):
    model = small_exports["fp32"].model_path
    _refused(capsys, ["audit", str(model), "--report", str(unwritable / "r.html")], "cannot write")


def test_row19_impossible_output_paths_are_one_line(tmp_path, ckpt, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    src = tmp_path / "d"
    src.mkdir()
    Image.fromarray(_u8()).save(src / "p.png")
    _refused(capsys, ["demo", "-o", str(afile)], "cannot create the output folder")
    _refused(capsys, ["deblur", str(src), "-o", str(afile / "sub"), *_fast(ckpt)], "is a file, not a folder")
    _refused(capsys, ["deblur", str(src / "p.png"), "-o", str(afile / "x.png"), *_fast(ckpt)], "is a file")
    _refused(capsys, ["eval", "--data", str(src), "--name", "sub/x", *_fast(ckpt)], "--name is a file stem")
    assert afile.read_text() == "x"


# ------------------------------------------------------------------ rows 15, 24: video
def test_row15_video_outputs_are_checked(tmp_path, ckpt, capsys):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"never decoded: refused first")
    for out, msg in (("x.webm", "a video's output must be"), ("x.gif", "a video's output must be"),
                     ("x", "a video's output must be"), ("x.png", "a video's output must be")):  # fmt: skip
        _refused(capsys, ["deblur", str(clip), "-o", str(tmp_path / out), *_fast(ckpt)], msg)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


@pytest.mark.slow
def test_row24_sigterm_during_a_video_leaves_no_temporary_file(tmp_path, ckpt):
    import imageio_ffmpeg

    ff = imageio_ffmpeg.get_ffmpeg_exe()
    clip = tmp_path / "long.mp4"
    subprocess.run([ff, "-v", "error", "-f", "lavfi", "-i", "testsrc=size=128x96:rate=10:duration=30",
                    "-pix_fmt", "yuv420p", str(clip)], check=True)  # fmt: skip
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "nafnet_litert.cli", "deblur", str(clip), "-o",
                             str(out_dir / "long.mp4"), *_fast(ckpt)], stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and not any(out_dir.iterdir()):
        time.sleep(0.2)
    assert any(out_dir.iterdir()), "the run never started writing"
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 143 and "terminated" in err, err[-2000:]
    assert list(out_dir.iterdir()) == []


# ------------------------------------------------------------------ rows 16-18, 25-26: numbers validated first
@pytest.mark.parametrize("scale", ["0", "-32", "nan", "3", "inf", "1e9"])
def test_row16_convert_scale_must_be_a_power_of_two(tmp_path, ckpt, capsys, scale):
    _refused(capsys, ["convert", str(ckpt), "-o", str(tmp_path / "m.tflite"), "--scale", scale], "bad --scale")


def test_row17_convert_size_limit(tmp_path, ckpt, capsys):
    _refused(capsys, ["convert", str(ckpt), "-o", str(tmp_path / "m.tflite"), "--size", "65536x65536"],
             "above the export limit")  # fmt: skip
    assert not list(tmp_path.glob("*.tflite"))


@pytest.mark.parametrize("args, message", [
    (["--threads", "abc"], "comma-separated whole numbers"),
    (["--json", "nodir/b.json"], "--json folder does not exist"),
    (["--size", "17"], "multiple of 16"),
])  # fmt: skip
def test_rows18_26_bench_validates_before_any_work(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    t0 = time.perf_counter()
    _refused(capsys, ["bench", "random:GoPro-width32", *args], message)
    assert time.perf_counter() - t0 < 10


def test_row25_tile_zero(tmp_path, ckpt, capsys):
    Image.fromarray(_u8()).save(tmp_path / "p.png")
    _refused(capsys, ["deblur", str(tmp_path / "p.png"), "-o", str(tmp_path / "o.png"), "--model", str(ckpt),
                      "--tile", "0"], "tile must be a positive number of pixels")  # fmt: skip


def test_row26_no_warning_before_the_error_line(tmp_path, ckpt):
    """A real process: library warnings (PyTorch, the converter) never print before the one error line."""
    code = ("import warnings, sys; from nafnet_litert.cli import main;"
            "warnings.warn('noise from a library', UserWarning);"
            "sys.exit(main(sys.argv[1:]))")  # fmt: skip
    r = subprocess.run([sys.executable, "-W", "default", "-c", code, "convert", str(ckpt), "-o",
                        str(tmp_path / "m.tflite"), "--scale", "3"], capture_output=True, text=True)  # fmt: skip
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and "noise from a library" not in ln
             and not ln.startswith("  warnings.warn")]  # fmt: skip
    assert r.returncode == 2 and len(lines) == 1 and "bad --scale" in lines[0], r.stderr


# ------------------------------------------------------------------ rows 21-23: models
def test_row21_audit_fails_a_model_that_is_not_image_to_image(tmp_path, capsys):
    import litert_torch
    import torch

    path = tmp_path / "linear.tflite"
    litert_torch.convert(torch.nn.Linear(4, 2).eval(), (torch.rand(1, 4),)).export(str(path))
    assert main(["audit", str(path), "--allow-unproven"]) == 1
    out = capsys.readouterr().out
    assert "io " in out and "not a [1,C,H,W] or [1,H,W,C] image" in out and "verdict       FAIL" in out
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(path.read_bytes()[:-40])
    assert main(["audit", str(cut)]) == 2


def test_row22_audit_gpu_needs_a_photo(small_exports, capsys):
    path = str(small_exports["fp32"].model_path)
    _refused(capsys, ["audit", path, "--gpu"], "need --image")
    _refused(capsys, ["audit", path, "--reference", "random:GoPro-width32"], "--reference needs --image")
    _refused(capsys, ["audit", path, "--image", path], "--image is for --reference, --gpu or --fp16")
    _refused(capsys, ["audit"], "a .tflite model is needed")


def test_row23_a_damaged_cached_model_is_rebuilt(tmp_path, ckpt, monkeypatch):
    import nafnet_litert as nl

    monkeypatch.setenv("NAFNET_LITERT_CACHE", str(tmp_path / "cache"))
    img = photo_array("coffee.png", (32, 32), (100, 100))
    opts = dict(tile=32, overlap=8, precision="fp32")
    with nl.Restorer(str(ckpt), **opts) as r:
        first = r(img)
        [model] = r.model_files
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])  # a crash or a full disk mid-write
    with nl.Restorer(str(ckpt), **opts) as r:
        assert np.array_equal(r(img), first)


def test_size_limit_names_the_option_that_raises_it(tmp_path, ckpt, capsys):
    """Decompression bombs: a photo above --max-megapixels is refused before decoding, and the message says which
    option raises the limit; raising it lets the same photo through."""
    Image.fromarray(_u8()).save(tmp_path / "p.png")  # 40 x 56 = 2240 pixels
    args = ["deblur", str(tmp_path / "p.png"), "-o", str(tmp_path / "o.png"), *_fast(ckpt)]
    line = _refused(capsys, [*args, "--max-megapixels", "0.001"], "above the limit")
    assert "--max-megapixels" in line and not (tmp_path / "o.png").exists()
    assert main([*args, "--max-megapixels", "0.01"]) == 0
    _refused(capsys, [*args, "--max-megapixels", "0"], "--max-megapixels must be positive")


def test_tile_multiple_is_the_networks(tmp_path, capsys):
    """The tile rule comes from the network (one factor 2 per level): a 2-level net takes 36 px tiles, a 4-level one
    refuses them in one line naming its own multiple."""
    from nafnet_litert.models.checkpoint import random_checkpoint
    from nafnet_litert.models.config import NAFNetConfig
    from nafnet_litert.restore import Restorer

    two = random_checkpoint(NAFNetConfig(width=8, enc_blocks=(1, 1), middle_blocks=1, dec_blocks=(1, 1)), seed=0)
    with Restorer(two, backend="torch", tile=36, overlap=8) as r:
        assert r(np.zeros((50, 40, 3), np.float32)).shape == (50, 40, 3)
    Image.fromarray(_u8()).save(tmp_path / "p.png")
    _refused(capsys, ["deblur", str(tmp_path / "p.png"), "-o", str(tmp_path / "o.png"), "--model",
                      "random:GoPro-width32", "--tile", "36"], "tile must be a positive multiple of 16")  # fmt: skip
