"""The Restorer (PyTorch / LiteRT, tiles / full frame / a given .tflite) and the eval command end to end on a small
temporary dataset (the CLI runs in-process: the subprocess path has its own tests)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from nafnet_litert.models.checkpoint import save_safetensors
from nafnet_litert.cli import main
from nafnet_litert.restore import Restorer

from tests.conftest import photo_array


@pytest.mark.slow
def test_litert_restorer_pads_like_the_reference(small_checkpoint):
    img = photo_array("coffee.png", (83, 117), offset=(100, 200))  # not a multiple of 16
    opts = dict(full_frame=True, tlc=False)
    with Restorer(small_checkpoint, backend="torch", **opts) as torch_net:
        ref = torch_net(img)
    with Restorer(small_checkpoint, precision="fp32", **opts) as lite:
        out = lite(img)
        assert lite.loaded_sizes == [(96, 128)]
    assert out.shape == img.shape
    assert np.abs(out - ref).max() <= 1e-4


def _make_pairs(root, n=2):
    from scipy.ndimage import uniform_filter1d

    for i, name in enumerate(["astronaut.png", "chelsea.png"][:n]):
        sharp = (photo_array(name, (64, 80), offset=(100, 100)) * 255).round().astype(np.uint8)
        blur = uniform_filter1d(sharp.astype(np.float32), 7, axis=1).round().astype(np.uint8)
        for sub, im in (("blur", blur), ("sharp", sharp)):
            (root / "seq" / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(im).save(root / "seq" / sub / f"{i:03d}.png")
    return root


def test_eval_cli_writes_tables_with_paper_metrics(tmp_path, small_checkpoint, capsys):
    from skimage.metrics import peak_signal_noise_ratio

    data = _make_pairs(tmp_path / "data")
    ckpt = tmp_path / "m.safetensors"
    save_safetensors(small_checkpoint.state_dict, ckpt)
    rc = main(["eval", "--data", str(data), "--model", str(ckpt), "--backend", "torch", "-o", str(tmp_path), "--quiet"])
    assert rc == 0
    stdout = capsys.readouterr().out
    js = json.loads((tmp_path / "eval_m_torch.json").read_text())
    assert (tmp_path / "eval_m_torch.csv").is_file() and (tmp_path / "eval_m_torch.md").is_file()
    row = js["images"][0]
    blur = np.asarray(Image.open(data / "seq" / "blur" / "000.png"))
    sharp = np.asarray(Image.open(data / "seq" / "sharp" / "000.png"))
    assert row["baseline_psnr"] == pytest.approx(peak_signal_noise_ratio(sharp, blur, data_range=255), abs=1e-9)
    assert "| **mean (2)** |" in stdout


@pytest.mark.slow
def test_eval_cli_name_is_the_file_stem_as_given(tmp_path, small_checkpoint):
    data = _make_pairs(tmp_path / "data", n=1)
    ckpt = tmp_path / "m.safetensors"
    save_safetensors(small_checkpoint.state_dict, ckpt)
    common = ["eval", "--data", str(data), "--model", str(ckpt), "--backend", "litert", "--precision", "fp32",
              "--tile", "32", "--overlap", "8", "-o", str(tmp_path), "--quiet"]  # fmt: skip
    for extra, stem in (([], "eval_m_litert_fp32"), (["--name", "run1"], "run1")):
        assert main(common + extra) == 0
        assert all((tmp_path / f"{stem}.{ext}").is_file() for ext in ("json", "csv", "md")), stem
    assert not list(tmp_path.glob("run1_*"))


def test_eval_cli_rejects_a_folder_without_pairs(tmp_path, capsys):
    assert main(["eval", "--data", str(tmp_path), "--model", "random:GoPro-width32"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len([ln for ln in err.splitlines() if ln.strip()]) == 1


@pytest.mark.slow
def test_tflite_file_restorer_tiles_other_sizes_like_pytorch(small_exports, small_checkpoint):
    import torch

    from nafnet_litert.restore.tiling import tiled_restore

    path = small_exports["fp32"].model_path
    img = photo_array("astronaut.png", (100, 150), offset=(200, 150))
    with Restorer(str(path)) as restorer:
        out = restorer(img)
    net = small_checkpoint.build_reference()
    with torch.no_grad():
        ref = tiled_restore(img, lambda b: net(torch.from_numpy(b)).numpy(), 64, 32)
    assert out.shape == img.shape
    assert np.abs(out - ref).max() <= 1e-4
