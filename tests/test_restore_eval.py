"""Restorers (PyTorch / LiteRT at the image's size) and the eval command end to end on a small temp dataset."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from nafnet_litert.checkpoint import save_safetensors
from nafnet_litert.runtime import LiteRTExportRestorer, TorchRestorer

from .conftest import photo_array


@pytest.mark.slow
def test_litert_restorer_pads_like_the_reference(small_checkpoint):
    img = photo_array("coffee.png", (83, 117), offset=(100, 200))  # not a multiple of 16
    ref = TorchRestorer(small_checkpoint)(img)
    lite = LiteRTExportRestorer(small_checkpoint, precision="fp32")
    out = lite(img)
    assert out.shape == img.shape
    assert np.abs(out - ref).max() <= 1e-4
    assert list(lite._models) == [(96, 128)]


def _make_pairs(root, n=2):
    from scipy.ndimage import uniform_filter1d

    for i, name in enumerate(["astronaut.png", "chelsea.png"][:n]):
        sharp = (photo_array(name, (64, 80), offset=(100, 100)) * 255).round().astype(np.uint8)
        blur = uniform_filter1d(sharp.astype(np.float32), 7, axis=1).round().astype(np.uint8)
        for sub, im in (("blur", blur), ("sharp", sharp)):
            (root / "seq" / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(im).save(root / "seq" / sub / f"{i:03d}.png")
    return root


def test_eval_cli_writes_tables_with_paper_metrics(tmp_path, small_checkpoint):
    from skimage.metrics import peak_signal_noise_ratio

    data = _make_pairs(tmp_path / "data")
    ckpt = tmp_path / "m.safetensors"
    save_safetensors(small_checkpoint.state_dict, ckpt)
    r = subprocess.run(
        [sys.executable, "-m", "nafnet_litert.cli", "eval", "--data", str(data), "--model", str(ckpt),
         "-o", str(tmp_path), "--quiet"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    js = json.loads((tmp_path / "eval_m_torch.json").read_text())
    assert (tmp_path / "eval_m_torch.csv").is_file() and (tmp_path / "eval_m_torch.md").is_file()
    row = js["images"][0]
    blur = np.asarray(Image.open(data / "seq" / "blur" / "000.png"))
    sharp = np.asarray(Image.open(data / "seq" / "sharp" / "000.png"))
    assert row["baseline_psnr"] == pytest.approx(peak_signal_noise_ratio(sharp, blur, data_range=255), abs=1e-9)
    assert "| **mean (2)** |" in r.stdout


@pytest.mark.slow
def test_eval_cli_name_is_the_file_stem_as_given(tmp_path, small_checkpoint):
    data = _make_pairs(tmp_path / "data", n=1)
    ckpt = tmp_path / "m.safetensors"
    save_safetensors(small_checkpoint.state_dict, ckpt)
    common = [sys.executable, "-m", "nafnet_litert.cli", "eval", "--data", str(data), "--model", str(ckpt),
              "--backend", "litert", "--precision", "fp32", "-o", str(tmp_path), "--quiet"]  # fmt: skip
    for extra, stem in (([], "eval_m_litert_fp32"), (["--name", "run1"], "run1")):
        r = subprocess.run(common + extra, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert all((tmp_path / f"{stem}.{ext}").is_file() for ext in ("json", "csv", "md")), stem
    assert not list(tmp_path.glob("run1_*"))


def test_eval_cli_rejects_a_folder_without_pairs(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "nafnet_litert.cli", "eval", "--data", str(tmp_path), "--model", "random:GoPro-width32"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) == 1


@pytest.mark.slow
def test_tflite_file_restorer_tiles_other_sizes_like_pytorch(tmp_path, small_checkpoint):
    import torch

    from nafnet_litert.export import export
    from nafnet_litert.runtime import LiteRTFileRestorer
    from nafnet_litert.runtime.tiling import tiled_restore

    path = export(small_checkpoint, tmp_path / "m.tflite", 64, "fp32").model_path
    img = photo_array("astronaut.png", (100, 150), offset=(200, 150))
    out = LiteRTFileRestorer(path)(img)
    net = small_checkpoint.build_reference()
    with torch.no_grad():
        ref = tiled_restore(img, lambda b: net(torch.from_numpy(b)).numpy(), 64, 32)
    assert out.shape == img.shape
    assert np.abs(out - ref).max() <= 1e-4
