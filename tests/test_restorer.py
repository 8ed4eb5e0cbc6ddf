"""One restorer for every path: ``nl.deblur``, ``nl.Restorer``, ``deblur`` and ``eval`` run the same network for the
same options, keep 16 bits, gray and alpha, and decode by bit depth (a dark 16-bit image stays dark).

Oracles: pypng reads the 16-bit files back (not our reader), scikit-image computes PSNR, PyTorch runs the
reference network (with TLC for full frame)."""

from __future__ import annotations

import json

import numpy as np
import png
import pytest
from PIL import Image

import nafnet_litert as nl
from nafnet_litert.cli import main
from nafnet_litert.errors import NafnetLitertError

from tests.conftest import photo_array


def _write_png16(path, a: np.ndarray) -> None:
    """Write uint16 H x W (gray) or H x W x 3 with pypng (independent of the package's writer)."""
    a = np.asarray(a, np.uint16)
    planes = 1 if a.ndim == 2 else a.shape[2]
    png.Writer(a.shape[1], a.shape[0], greyscale=planes == 1, bitdepth=16).write(
        open(path, "wb"), a.reshape(a.shape[0], -1).tolist()
    )


def _read_png16(path) -> tuple[np.ndarray, dict]:
    w, h, rows, info = png.Reader(filename=str(path)).asDirect()
    a = np.vstack([np.asarray(r, np.uint16) for r in rows]).reshape(h, w, info["planes"])
    return a, info


def _u16(name, size, offset=(40, 60)) -> np.ndarray:
    return np.round(photo_array(name, size, offset) * 65535).astype(np.uint16)


@pytest.fixture(scope="module")
def small_file(small_checkpoint_file):
    return small_checkpoint_file


@pytest.mark.slow
def test_nl_deblur_default_path_keeps_16_bit_rgb_gray_and_dark(tmp_path):
    """The default path (bundled model, LiteRT fp16, 256 px tiles, export cache) on 16-bit files: each output is a
    16-bit PNG of the input's size and mode, equal to nl.Restorer on the decoded array, and a dark 16-bit photo
    (every value < 256) comes back dark: decoding by bit depth, never by the pixel values."""
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    from skimage.metrics import peak_signal_noise_ratio

    from nafnet_litert.eval.demo import DEMO_BLUR, DEMO_SHARP

    rgb, sharp = (np.asarray(Image.open(p)).astype(np.uint16) * 257 for p in (DEMO_BLUR, DEMO_SHARP))
    gray = np.round(photo_array("coffee.png", (90, 140), (50, 50)).mean(axis=2) * 65535).astype(np.uint16)
    dark = (rgb // 300).astype(np.uint16)  # max 218: an underexposed 16-bit frame
    _write_png16(src / "rgb16.png", rgb)
    _write_png16(src / "gray16.png", gray)
    _write_png16(src / "dark16.png", dark)

    stats = nl.deblur(src, dst)
    assert stats.images == 3

    out_rgb, info = _read_png16(dst / "rgb16.png")
    assert info["bitdepth"] == 16 and info["planes"] == 3 and out_rgb.shape == rgb.shape
    out_gray, info = _read_png16(dst / "gray16.png")
    assert info["bitdepth"] == 16 and info["planes"] == 1 and out_gray.shape[:2] == gray.shape
    out_dark, _ = _read_png16(dst / "dark16.png")
    assert out_dark.max() < 1024 and abs(out_dark.mean() - dark.mean()) < 0.1 * dark.mean()

    with nl.Restorer() as restorer:  # the same network on the array: the same pixels
        assert np.array_equal(restorer(rgb), out_rgb)
        assert np.array_equal(restorer(gray), out_gray[:, :, 0])
    # and it really deblurs the real GoPro blur at 16 bits
    gain = peak_signal_noise_ratio(sharp, out_rgb, data_range=65535) - peak_signal_noise_ratio(sharp, rgb, data_range=65535)
    assert gain > 1.0


def _pairs16(root, dark: bool = False) -> None:
    from scipy.ndimage import uniform_filter1d

    for i, (name, gray) in enumerate((("chelsea.png", False), ("coffee.png", True))):
        sharp = photo_array(name, (80, 150), (60, 90))
        if gray:
            sharp = sharp.mean(axis=2)
        blur = uniform_filter1d(sharp, 9, axis=1)
        scale = 200.0 if dark else 65535.0
        for sub, im in (("blur", blur), ("sharp", sharp)):
            (root / sub).mkdir(parents=True, exist_ok=True)
            _write_png16(root / sub / f"p{i}.png", np.round(im * scale).astype(np.uint16))


def test_eval_and_deblur_run_the_same_network_on_16_bit_pairs(tmp_path, small_file, capsys):
    """eval --backend litert --save and deblur with the same flags write the same 16-bit images (max abs
    <= 1/65535); eval's baseline PSNR on 16-bit (RGB and gray) pairs is scikit-image's on the 8-bit rounding."""
    from skimage.metrics import peak_signal_noise_ratio

    data = tmp_path / "data"
    _pairs16(data)
    flags = ["--model", str(small_file), "--tile", "64", "--overlap", "16", "--precision", "fp32", "--quiet"]
    saved, deblurred = tmp_path / "saved", tmp_path / "deblurred"
    saved.mkdir()
    assert main(["eval", "--data", str(data), "--backend", "litert", "--save", str(saved), "-o", str(tmp_path),
                 "--name", "e", *flags]) == 0  # fmt: skip
    assert main(["deblur", str(data / "blur"), "-o", str(deblurred), *flags]) == 0
    for name, planes in (("p0.png", 3), ("p1.png", 1)):
        a, ia = _read_png16(saved / name)
        b, ib = _read_png16(deblurred / name)
        assert ia["bitdepth"] == ib["bitdepth"] == 16 and ia["planes"] == ib["planes"] == planes
        assert np.abs(a.astype(np.int64) - b).max() <= 1

    rows = json.loads((tmp_path / "e.json").read_text())["images"]
    for row in rows:
        blur16, _ = _read_png16(data / "blur" / row["name"])
        sharp16, _ = _read_png16(data / "sharp" / row["name"])
        u8 = [np.repeat(np.round(x / 257.0), 3 // x.shape[2], axis=2).astype(np.uint8) for x in (blur16, sharp16)]
        assert row["baseline_psnr"] == pytest.approx(peak_signal_noise_ratio(u8[1], u8[0], data_range=255), abs=1e-9)
    capsys.readouterr()


def test_eval_decodes_a_dark_16_bit_pair_by_bit_depth(tmp_path, small_file, capsys):
    """Values below 256 in a 16-bit file are dark, not full range: the baseline PSNR is that of the 8-bit rounding
    of value / 65535 (a reader that picked /255 from the pixel values would see a bright image)."""
    from skimage.metrics import peak_signal_noise_ratio

    data = tmp_path / "dark"
    _pairs16(data, dark=True)
    assert main(["eval", "--data", str(data), "--model", str(small_file), "--backend", "torch", "-o", str(tmp_path),
                 "--name", "d", "--quiet"]) == 0  # fmt: skip
    rows = json.loads((tmp_path / "d.json").read_text())["images"]
    for row in rows:
        blur16, _ = _read_png16(data / "blur" / row["name"])
        sharp16, _ = _read_png16(data / "sharp" / row["name"])
        u8 = [np.round(x / 257.0).astype(np.uint8) for x in (blur16, sharp16)]
        assert max(x.max() for x in u8) <= 1
        expected = peak_signal_noise_ratio(u8[1], u8[0], data_range=255)
        assert row["baseline_psnr"] == pytest.approx(expected, abs=1e-9) or (
            row["baseline_psnr"] is None and expected == np.inf
        )
    capsys.readouterr()


@pytest.mark.slow
def test_full_frame_is_tlc_and_matches_pytorch(tmp_path, small_file, capsys):
    """--full-frame exports at the padded image size with TLC: on an image wider than TLC's window (384 px for
    256 training crops) the LiteRT output matches PyTorch's TLC network, which differs from the plain one."""
    img = photo_array("astronaut.png", (64, 420), (200, 40))
    with nl.Restorer(str(small_file), backend="torch", full_frame=True) as tlc_net:
        ref = tlc_net(img)
    with nl.Restorer(str(small_file), backend="torch", full_frame=True, tlc=False) as plain_net:
        plain = plain_net(img)
    assert np.abs(ref - plain).max() > 1e-3  # TLC changes the result here
    with nl.Restorer(str(small_file), full_frame=True, precision="fp32") as lite:
        out = lite(img)
        [model] = lite.model_files
    assert "_tlc_" in model.name and json.loads(model.with_suffix(".json").read_text())["tlc"]
    assert np.abs(out - ref).max() <= 1e-4
    # the CLI's --full-frame runs the same cached model
    src = tmp_path / "wide.png"
    _write_png16(src, np.round(img * 65535).astype(np.uint16))
    assert main(["deblur", str(src), "-o", str(tmp_path / "sharp.png"), "--model", str(small_file), "--full-frame",
                 "--precision", "fp32", "--quiet"]) == 0  # fmt: skip
    written, _ = _read_png16(tmp_path / "sharp.png")
    expected = np.round(np.clip(out, 0, 1) * 65535)
    assert np.abs(written.astype(np.int64) - expected).max() <= 1
    capsys.readouterr()


def test_restorer_returns_the_type_it_was_given(small_file):
    """Arrays keep shape and dtype (gray 2-D, RGBA with untouched alpha, uint16, float), Pillow images keep their
    mode; every form computes the same as the float RGB path."""
    rgb = photo_array("chelsea.png", (48, 72), (50, 80))
    with nl.Restorer(str(small_file), backend="torch", tile=32, overlap=8) as restore:
        ref = restore(rgb)
        assert ref.dtype == np.float32 and ref.shape == rgb.shape

        u8 = np.round(rgb * 255).astype(np.uint8)
        alpha = np.arange(48 * 72, dtype=np.uint32).reshape(48, 72, 1).astype(np.uint8)
        rgba = restore(np.concatenate([u8, alpha], axis=2))
        assert rgba.dtype == np.uint8 and rgba.shape == (48, 72, 4)
        assert np.array_equal(rgba[:, :, 3], alpha[:, :, 0])
        assert np.array_equal(rgba[:, :, :3], restore(u8))

        g16 = np.round(rgb.mean(axis=2) * 65535).astype(np.uint16)
        out16 = restore(g16)
        assert out16.dtype == np.uint16 and out16.shape == g16.shape
        g3 = np.repeat(g16[:, :, None].astype(np.float32) / 65535, 3, axis=2)
        luma = np.clip(restore(g3), 0, 1) @ np.array([0.299, 0.587, 0.114], np.float32)  # clamp, then BT.601
        assert np.abs(out16.astype(np.float64) - luma * 65535).max() <= 1.0

        for mode, arr in (("RGB", u8), ("RGBA", np.concatenate([u8, alpha], axis=2)), ("L", u8[:, :, 0])):
            im = Image.fromarray(arr)
            out = restore(im)
            assert isinstance(out, Image.Image) and out.mode == mode and out.size == im.size
        im16 = Image.fromarray(g16)
        out = restore(im16)
        assert out.mode == "I;16" and np.array_equal(np.asarray(out), out16)

        with pytest.raises(NafnetLitertError, match="H x W"):
            restore(np.zeros((4, 4, 5), np.uint8))
        with pytest.raises(NafnetLitertError, match="uint8, uint16 or float"):
            restore(np.zeros((4, 4, 3), np.int32))


@pytest.mark.parametrize("full_frame", [False, True])
def test_progress_counts_every_model_run(small_file, full_frame):
    """The progress callback reports each model run, tiles and full frame alike, for float and integer images."""
    img = photo_array("coffee.png", (70, 100), (30, 40))
    with nl.Restorer(str(small_file), backend="torch", tile=32, overlap=8, full_frame=full_frame) as restore:
        expected = restore.tiles_for(70, 100)
        assert expected == (1 if full_frame else 12)
        for x in (img, np.round(img * 255).astype(np.uint8)):
            done = []
            restore(x, progress=done.append)
            assert sum(done) == expected
