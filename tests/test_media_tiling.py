"""Photo I/O that keeps what users care about, tiling, and the deblur command on files, folders and video."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from nafnet_litert.cli import main
from nafnet_litert.io.image import read_photo, write_photo
from nafnet_litert.restore.tiling import positions, tiled_restore

from tests.conftest import make_clip, photo_array

CLI = [sys.executable, "-m", "nafnet_litert.cli"]


def _u8(name, size=(96, 128)):
    return (photo_array(name, size, offset=(60, 80)) * 255).round().astype(np.uint8)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, orientation):
    im = Image.fromarray(_u8("astronaut.png", (40, 64)))
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / "o.jpg"
    im.save(p, exif=exif.tobytes(), quality=100)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(p)))
    ph = read_photo(p)
    assert np.array_equal(ph.color, expected)
    # the same through the 16-bit path (orientation applied by our own code)
    p16 = tmp_path / "o16.png"
    a16 = _u8("astronaut.png", (40, 64)).astype(np.uint16) * 257
    write_photo(type(ph)(a16), p16)
    assert read_photo(p16).color.dtype == np.uint16


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_rgb_round_trip_is_lossless(tmp_path, suffix):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 65536, (33, 47, 3), dtype=np.uint16)
    from nafnet_litert.photo import Photo

    p = tmp_path / f"x{suffix}"
    write_photo(Photo(a), p)
    back = read_photo(p)
    assert back.color.dtype == np.uint16 and np.array_equal(back.color, a)


def test_alpha_gray_icc_exif_survive_a_deblur(tmp_path, small_checkpoint_file):
    from nafnet_litert.restore import Restorer

    ckpt = small_checkpoint_file
    deb = Restorer(str(ckpt), backend="torch", tile=64, overlap=16)
    rgba = np.concatenate([_u8("chelsea.png", (70, 90)), np.linspace(0, 255, 70 * 90).reshape(70, 90, 1).astype(np.uint8)], 2)
    icc = ImageOps.__name__.encode() * 10  # any bytes: Pillow stores the profile verbatim in PNG
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    p = tmp_path / "a.png"
    Image.fromarray(rgba).save(p, icc_profile=icc, exif=exif.tobytes())
    out = deb.restore_photo(read_photo(p))
    q = tmp_path / "b.png"
    write_photo(out, q)
    back = Image.open(q)
    assert back.mode == "RGBA" and back.info.get("icc_profile") == icc
    assert back.getexif().get(0x010F) == "TestCam"
    assert np.array_equal(np.asarray(back)[:, :, 3], rgba[:, :, 3])  # alpha untouched
    gray = tmp_path / "g.png"
    Image.fromarray(_u8("coffee.png", (50, 60))[:, :, 0]).save(gray)
    g = deb.restore_photo(read_photo(gray))
    assert g.gray and g.color.shape == (50, 60, 1) and g.color.dtype == np.uint8


def test_tiling_identity_is_exact_and_covers_everything():
    img = photo_array("astronaut.png", (300, 517))
    assert np.array_equal(tiled_restore(img, lambda t: t, 128, 32, batch=3), img)
    u16 = (img * 65535).round().astype(np.uint16)
    assert np.array_equal(tiled_restore(u16, lambda t: t, 128, 16), u16)
    small = img[:50, :70]
    assert np.array_equal(tiled_restore(small, lambda t: t, 128, 32), small)
    for length in (128, 129, 300, 517, 1280):
        s = positions(length, 128, 32)
        assert s[0] == 0 and s[-1] == max(0, length - 128)
        assert all(b - a <= 128 - 32 for a, b in zip(s, s[1:]))  # every overlap >= 32


def test_tiled_local_network_matches_whole_image():
    """A network with a small receptive field: tiled output equals the whole-image output away from the
    tile-edge band that the blending ramps cover."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Tanh(), torch.nn.Conv2d(8, 3, 3, padding=1)).eval()
    img = photo_array("coffee.png", (200, 330))
    with torch.no_grad():
        whole = net(torch.from_numpy(img.transpose(2, 0, 1)[None].copy()))[0].numpy().transpose(1, 2, 0)
        tiled = tiled_restore(img, lambda t: net(torch.from_numpy(t)).numpy(), 64, 24, batch=4)
    assert np.abs(tiled - whole).max() < 0.02
    assert np.abs(tiled - whole).mean() < 1e-3


def test_cli_folder_mirrors_tree_and_skips_existing(tmp_path, small_checkpoint_file, capsys):
    ckpt = small_checkpoint_file
    src = tmp_path / "in"
    (src / "a" / "b").mkdir(parents=True)
    Image.fromarray(_u8("astronaut.png", (64, 80))).save(src / "one.jpg")
    Image.fromarray(_u8("chelsea.png", (70, 50))).save(src / "a" / "b" / "two.png")
    (src / "notes.txt").write_text("not a photo")
    out = tmp_path / "out"
    base = ["deblur", str(src), "-o", str(out), "--model", str(ckpt), "--backend", "torch", "--tile", "64",
            "--overlap", "16", "--quiet"]  # fmt: skip
    assert main(base + ["--compare"]) == 0
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "a/b/two.png", "a/b/two_compare.png", "one.jpg", "one_compare.jpg"]  # fmt: skip
    assert Image.open(out / "a" / "b" / "two.png").size == (50, 70)
    assert Image.open(out / "one_compare.jpg").size == (80 * 2 + 8, 64)
    capsys.readouterr()
    assert main(base + ["--skip-existing"]) == 0 and "nothing to do" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.png", "-o", "x.png"], "input not found"),
        (["bad.png", "-o", "x.png"], "not a readable image"),
        (["good.png", "-o", "nodir/x.png"], "output folder does not exist"),
        (["good.png", "-o", "x.png", "--tile", "100"], "multiple of 16"),
        (["good.png", "-o", "x.png", "--overlap", "300"], "overlap must be"),
    ],
)
def test_cli_deblur_errors_are_one_line_and_leave_nothing(tmp_path, args, message, capsys, monkeypatch):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    Image.fromarray(_u8("astronaut.png", (40, 40))).save(tmp_path / "good.png")
    before = sorted(p.name for p in tmp_path.iterdir())
    monkeypatch.chdir(tmp_path)
    assert main(["deblur", *args, "--model", "random:GoPro-width32", "--backend", "torch", "--quiet"]) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.slow
def test_cli_video_keeps_frames_and_audio(tmp_path, small_checkpoint_file):
    """Through a subprocess: the real CLI path (native logs sent to a file, stdout kept clean)."""
    import imageio_ffmpeg

    ff = imageio_ffmpeg.get_ffmpeg_exe()
    clip = make_clip(tmp_path / "clip.mp4", seconds=1)
    ckpt = small_checkpoint_file
    out = tmp_path / "sharp.mp4"
    r = subprocess.run(CLI + ["deblur", str(clip), "-o", str(out), "--model", str(ckpt), "--backend", "torch",
                              "--tile", "64", "--overlap", "16", "--quiet"], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    probe = subprocess.run([ff, "-i", str(out)], capture_output=True, text=True).stderr
    assert "Video: h264" in probe and "96x64" in probe and "Audio:" in probe
    n = sum(1 for _ in list(imageio_ffmpeg.read_frames(str(out)))[1:])
    assert n == 10
