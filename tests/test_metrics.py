"""Paper-exact metrics (PSNR, BasicSR 3-D SSIM, standard SSIM), dataset pairing and the eval runner."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio

from nafnet_litert.errors import NafnetLitertError
from nafnet_litert.eval import (
    DatasetError,
    EvalResult,
    evaluate,
    find_pairs,
    psnr,
    ssim_basicsr3d,
    ssim_standard,
    to_uint8,
)


def _degrade(img: np.ndarray, seed: int, box: int = 5, noise: float = 4.0) -> np.ndarray:
    """Box blur (separable) + Gaussian noise, back to uint8: a realistic 'blurred' partner."""
    rng = np.random.default_rng(seed)
    x = img.astype(np.float64)
    k = np.ones(box) / box
    for axis in (0, 1):
        x = np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), axis, x)
    return np.clip(np.round(x + rng.normal(0, noise, x.shape)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photos():
    a = skdata.astronaut()
    c = skdata.chelsea()
    return {"astronaut": (a, _degrade(a, 0)), "chelsea": (c, _degrade(c, 1, box=3, noise=2.0))}


# -- to_uint8 ------------------------------------------------------------------------------------------


def test_to_uint8_clamps_and_rounds_half_to_even():
    x = np.array([-0.5, 0.0, 3 / 255, 0.2, 0.498, 0.5, 1.0, 1.7, np.nan], np.float32)
    # 0.5 * 255 = 127.5 exactly in float32 -> half-to-even gives 128; 0.498 * 255 = 126.99 -> 127
    assert to_uint8(x).tolist() == [0, 0, 3, 51, 127, 128, 255, 255, 0]
    assert to_uint8(x).dtype == np.uint8
    with pytest.raises(TypeError):
        to_uint8(np.zeros(3, np.uint8))


def test_to_uint8_matches_basicsr_tensor2img():
    # tensor2img: torch clamp_(0, 1) on float32, then numpy (x * 255.0).round().astype(uint8)
    rng = np.random.default_rng(3)
    x = np.concatenate([np.arange(511) / 510.0, rng.uniform(-0.2, 1.2, 5000)]).astype(np.float32)
    ref = (torch.from_numpy(x.copy()).float().clamp_(0, 1).numpy() * 255.0).round().astype(np.uint8)
    np.testing.assert_array_equal(to_uint8(x), ref)
    # an exact 8-bit image survives the /255 -> to_uint8 round trip
    a = skdata.coffee()
    np.testing.assert_array_equal(to_uint8(a.astype(np.float32) / 255.0), a)


# -- PSNR ----------------------------------------------------------------------------------------------


def test_psnr_equals_skimage(photos):
    for sharp, blur in photos.values():
        ours = psnr(blur, sharp)
        ref = peak_signal_noise_ratio(sharp, blur, data_range=255)
        assert ours == pytest.approx(ref, abs=1e-10)
        assert 15 < ours < 45
    a = photos["astronaut"][0]
    assert psnr(a, a) == math.inf
    # known value: one grey level off everywhere -> 20 log10(255) dB
    assert psnr(a, np.where(a < 255, a + 1, a - 1).astype(np.uint8)) == pytest.approx(20 * math.log10(255))


def test_metrics_reject_mismatched_or_float_inputs():
    a = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError):
        psnr(a, np.zeros((16, 15, 3), np.uint8))
    with pytest.raises(TypeError):
        ssim_basicsr3d(a.astype(np.float32), a.astype(np.float32))


# -- standard SSIM -------------------------------------------------------------------------------------


def _ssim2d_valid(a: np.ndarray, b: np.ndarray) -> float:
    """Independent float64 reference for the standard SSIM: for every window lying wholly inside the image
    (11x11, Gaussian sigma 1.5 taps), the SSIM of its weighted statistics, averaged over windows and channels."""
    x = np.arange(11) - 5.0
    g = np.exp(-(x**2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    a, b = a.astype(np.float64), b.astype(np.float64)
    a, b = (a[..., None], b[..., None]) if a.ndim == 2 else (a, b)
    from numpy.lib.stride_tricks import sliding_window_view

    def stat(x):
        return np.einsum("hwcij,ij->hwc", sliding_window_view(x, (11, 11), axis=(0, 1)), w)

    mu_a, mu_b = stat(a), stat(b)
    va, vb, cov = stat(a * a) - mu_a**2, stat(b * b) - mu_b**2, stat(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    m = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))
    return float(m.mean())


def test_ssim_standard_is_the_windowed_ssim_most_papers_report(photos):
    """scikit-image with the paper options, checked against explicit windows: the options are the right ones."""
    for sharp, blur in photos.values():
        ours = ssim_standard(blur[:80, :96], sharp[:80, :96])
        assert ours == pytest.approx(_ssim2d_valid(blur[:80, :96], sharp[:80, :96]), abs=1e-9)
        assert 0.3 < ssim_standard(blur, sharp) < 0.999
    sharp, blur = photos["chelsea"]  # odd size, small image, single channel
    s, b = sharp[13:40, 7:25], blur[13:40, 7:25]
    assert ssim_standard(b, s) == pytest.approx(_ssim2d_valid(b, s), abs=1e-9)
    assert ssim_standard(b[..., 1], s[..., 1]) == pytest.approx(_ssim2d_valid(b[..., 1], s[..., 1]), abs=1e-9)


# -- BasicSR 3-D SSIM ----------------------------------------------------------------------------------


def _ssim_with(filt, a, b) -> float:
    """SSIM's formula (8-bit constants) with local means taken by ``filt`` (numpy or torch arrays)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ma, mb = filt(a), filt(b)
    va = filt(a * a) - ma**2
    vb = filt(b * b) - mb**2
    cab = filt(a * b) - ma * mb
    s = ((2 * ma * mb + c1) * (2 * cab + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
    return float(s.mean())


def _ssim3d_direct(a: np.ndarray, b: np.ndarray) -> float:
    """Independent float64 reference: explicit 11x11x11 window g[i]g[j]g[k] (cv2.getGaussianKernel(11,
    1.5) taps), edge-replicate padding of 5 on all three axes, direct (non-separable) sum over all 1331
    offsets, mean of the full SSIM map."""
    x = np.arange(11) - 5.0
    g = np.exp(-(x**2) / (2 * 1.5**2))
    g /= g.sum()
    w = g[:, None, None] * g[None, :, None] * g[None, None, :]
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    h, wd, c = a.shape

    def filt(v):
        p = np.pad(v, 5, mode="edge")
        out = np.zeros_like(v)
        for i in range(11):
            for j in range(11):
                for k in range(11):
                    out += w[i, j, k] * p[i : i + h, j : j + wd, k : k + c]
        return out

    return _ssim_with(filt, a, b)


def _ssim3d_basicsr_torch(a: np.ndarray, b: np.ndarray, padding_mode: str = "replicate") -> float:
    """BasicSR's own recipe (Conv3d(1,1,(11,11,11), padding=(5,5,5), padding_mode='replicate') on the
    (1,1,H,W,C) tensor, kernel np.stack([window * k for k in g])), run in float64 instead of float32."""
    x = np.arange(11) - 5.0
    g = np.exp(-(x**2) / (2 * 1.5**2))
    g /= g.sum()
    window = np.outer(g, g)
    kernel = torch.tensor(np.stack([window * k for k in g], axis=0))
    conv = torch.nn.Conv3d(1, 1, (11, 11, 11), padding=(5, 5, 5), bias=False, padding_mode=padding_mode).double()
    with torch.no_grad():
        conv.weight[0, 0] = kernel

        def f(v):
            return conv(v[None, None])[0, 0]

        return _ssim_with(f, torch.tensor(a.astype(np.float64)), torch.tensor(b.astype(np.float64)))


def test_ssim3d_equals_direct_3d_convolution(photos):
    for (sharp, blur), (y, x) in zip(photos.values(), [(200, 180), (101, 33)]):
        s, b = sharp[y : y + 48, x : x + 40], blur[y : y + 48, x : x + 40]
        ours = ssim_basicsr3d(b, s)
        assert ours == pytest.approx(_ssim3d_direct(b, s), abs=1e-6)
        assert 0.2 < ours < 0.999


def test_ssim3d_follows_basicsr_conv3d_recipe(photos):
    sharp, blur = photos["astronaut"]
    s, b = sharp[150:214, 240:300], blur[150:214, 240:300]
    ours = ssim_basicsr3d(b, s)
    assert ours == pytest.approx(_ssim3d_basicsr_torch(b, s), abs=1e-9)
    # the padding convention matters: zero padding (Conv3d default) gives a clearly different number
    assert abs(ours - _ssim3d_basicsr_torch(b, s, padding_mode="zeros")) > 1e-3
    # channel order (BasicSR scores BGR images) does not change the value
    assert ssim_basicsr3d(b[..., ::-1], s[..., ::-1]) == pytest.approx(ours, abs=1e-12)
    # and it is a different metric from the per-channel SSIM
    assert abs(ours - ssim_standard(b, s)) > 1e-3


def test_ssim_of_identical_images_is_one(photos):
    a = photos["chelsea"][0]
    assert ssim_basicsr3d(a, a) == pytest.approx(1.0, abs=1e-12)
    assert ssim_standard(a, a) == pytest.approx(1.0, abs=1e-12)
    flat = np.full((20, 20, 3), 7, np.uint8)
    assert ssim_basicsr3d(flat, flat) == pytest.approx(1.0, abs=1e-12)


# -- dataset pairing -----------------------------------------------------------------------------------


def _png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_find_pairs_flat_and_nested_layouts(tmp_path):
    img = np.zeros((12, 12, 3), np.uint8)
    flat = tmp_path / "flat"
    for n in ("b.png", "a.png"):
        _png(flat / "input" / n, img)
        _png(flat / "target" / n, img)
    (flat / "input" / "notes.txt").write_text("x")
    pairs = find_pairs(flat)
    assert [p.name for p in pairs] == ["a.png", "b.png"]
    assert pairs[0].blur_path == flat / "input" / "a.png"
    assert pairs[0].sharp_path == flat / "target" / "a.png"

    gopro = tmp_path / "GOPRO_Large" / "test"
    for seq in ("GOPR0410_11_00", "GOPR0384_11_00"):
        for n in ("000002.png", "000001.png"):
            _png(gopro / seq / "blur" / n, img)
            _png(gopro / seq / "sharp" / n, img)
        _png(gopro / seq / "blur_gamma" / "000001.png", img)  # ignored
    pairs = find_pairs(tmp_path / "GOPRO_Large")
    assert [p.name for p in pairs] == [
        "test/GOPR0384_11_00/000001.png",
        "test/GOPR0384_11_00/000002.png",
        "test/GOPR0410_11_00/000001.png",
        "test/GOPR0410_11_00/000002.png",
    ]
    assert pairs[-1].sharp_path == gopro / "GOPR0410_11_00" / "sharp" / "000002.png"


def test_find_pairs_errors(tmp_path):
    img = np.zeros((12, 12, 3), np.uint8)
    empty = tmp_path / "empty"
    (empty / "blur").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no image pairs"):
        find_pairs(empty)
    with pytest.raises(DatasetError, match="not found"):
        find_pairs(tmp_path / "missing")

    orphan = tmp_path / "orphan"
    _png(orphan / "blur" / "1.png", img)
    _png(orphan / "blur" / "2.png", img)
    _png(orphan / "sharp" / "1.png", img)
    with pytest.raises(DatasetError, match="2.png has no sharp partner") as e:
        find_pairs(orphan)
    assert isinstance(e.value, NafnetLitertError) and "\n" not in str(e.value)

    nosharp = tmp_path / "nosharp"
    _png(nosharp / "blur" / "1.png", img)
    with pytest.raises(DatasetError, match="no sibling 'sharp'"):
        find_pairs(nosharp)


# -- evaluate ------------------------------------------------------------------------------------------


def test_evaluate_identity_restore_equals_baseline(tmp_path, photos):
    root = tmp_path / "ds"
    crops = [("astronaut", (100, 200)), ("chelsea", (60, 150))]
    for i, (key, (y, x)) in enumerate(crops):
        sharp, blur = photos[key]
        _png(root / "blur" / f"{i}.png", blur[y : y + 24, x : x + 20])
        _png(root / "sharp" / f"{i}.png", sharp[y : y + 24, x : x + 20])
    pairs = find_pairs(root)
    calls = []

    def identity(img):
        calls.append((img.dtype, img.shape))
        return img.copy()

    res = evaluate(identity, pairs, progress=False)
    assert calls == [(np.float32, (24, 20, 3))] * 2
    assert isinstance(res, EvalResult) and len(res.rows) == 2
    for r, (key, (y, x)) in zip(res.rows, crops):
        sharp, blur = photos[key]
        s, b = sharp[y : y + 24, x : x + 20], blur[y : y + 24, x : x + 20]
        assert r["model_psnr"] == r["baseline_psnr"] == pytest.approx(psnr(b, s), abs=1e-12)
        assert r["model_ssim3d"] == r["baseline_ssim3d"] == pytest.approx(ssim_basicsr3d(b, s), abs=1e-12)
        assert r["model_ssim"] == r["baseline_ssim"] == pytest.approx(ssim_standard(b, s), abs=1e-12)
        assert r["delta_psnr"] == 0.0 and r["seconds"] >= 0
    m = res.mean
    assert m["model_psnr"] == pytest.approx((res.rows[0]["model_psnr"] + res.rows[1]["model_psnr"]) / 2)

    paths = res.write(tmp_path / "out", "gopro")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["gopro.csv", "gopro.json", "gopro.md"]
    doc = json.loads(paths["json"].read_text())
    assert doc["count"] == 2 and [r["name"] for r in doc["images"]] == ["0.png", "1.png"]
    assert doc["mean"]["model_psnr"] == pytest.approx(m["model_psnr"])
    rows = list(csv.DictReader(paths["csv"].open()))
    assert [r["name"] for r in rows] == ["0.png", "1.png", "MEAN"]
    assert float(rows[2]["baseline_ssim3d"]) == pytest.approx(m["baseline_ssim3d"], abs=1e-12)
    md = paths["markdown"].read_text()
    assert md == res.to_markdown()
    assert md.startswith("| image | baseline PSNR | model PSNR | ΔPSNR | baseline SSIM3d |")
    assert "| **mean (2)** |" in md and "+0.0000" in md

    # an oracle restore (returns the sharp image) scores inf PSNR and SSIM 1; JSON stays valid
    sharp_imgs = {p.blur_path.name: np.asarray(Image.open(p.sharp_path), np.float32) / 255 for p in pairs}
    it = iter(sharp_imgs.values())
    res2 = evaluate(lambda img: next(it), pairs, progress=False)
    assert all(r["model_psnr"] == math.inf and r["model_ssim3d"] == pytest.approx(1.0) for r in res2.rows)
    assert json.loads(res2.json_text())["images"][0]["model_psnr"] is None
    assert "| inf |" in res2.to_markdown()
