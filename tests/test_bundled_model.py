"""The bundled default model: it loads, it really deblurs held-out real GoPro frames, and the demo runs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from nafnet_litert.models.checkpoint import resolve_checkpoint
from nafnet_litert.eval import evaluate, find_pairs
from nafnet_litert.restore import Restorer
from nafnet_litert.train import TRAIN_CONFIGS
from nafnet_litert.models.zoo import bundled_path


@pytest.fixture(scope="module")
def default():
    return resolve_checkpoint("default")


def test_bundled_weights_are_the_small_config_in_fp16(default):
    from safetensors import safe_open

    assert default.config == TRAIN_CONFIGS["small"]
    path = bundled_path()
    assert path.stat().st_size < 5e6
    with safe_open(str(path), "pt") as f:
        assert all(f.get_tensor(k).dtype == torch.float16 for k in f.keys())
    assert (path.parent / "MODEL_CARD.md").is_file()
    # trained: the residual branches are live (beta/gamma start at zero)
    assert all(v.abs().max() > 0 for k, v in default.state_dict.items() if k.endswith(("beta", "gamma")))


@pytest.mark.slow
def test_bundled_model_deblurs_held_out_gopro_frames(default, gopro_crops, snapshot):
    """Held-out real camera-motion blur (never seen in training): every frame gets sharper."""
    with Restorer(default, backend="torch", full_frame=True, tlc=False) as whole_frame:
        res = evaluate(whole_frame, find_pairs(gopro_crops), progress=False)
    gains = [r["delta_psnr"] for r in res.rows]
    assert len(gains) == 5
    assert min(gains) > 0, gains  # no frame is made worse
    assert np.mean(gains) > 1.0, gains
    assert round(float(np.mean(gains)), 1) == snapshot(name="mean gain dB")
    assert res.mean["model_ssim3d"] > res.mean["baseline_ssim3d"]


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path, snapshot):
    """The main job: the bundled model deblurs the bundled GoPro crop through LiteRT tiles, beats the blurry input
    against the sharp frame (PSNR by scikit-image on the written files), and the model it ran is GPU-clean."""
    from PIL import Image
    from skimage.metrics import peak_signal_noise_ratio

    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "nafnet_litert.cli", "demo", "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((out / "summary.json").read_text())
    assert s["audit"]["gpu_clean"] and s["audit"]["rejected_ops"] == {} and s["audit"]["unproven_ops"] == {}
    assert s["parity"]["corr"] >= 0.9999
    for name in ("blurry.png", "restored.png", "sharp.png", "compare.png", "summary.json", s["tflite"]):
        assert (out / name).is_file()
    blurry, restored, sharp = (np.asarray(Image.open(out / f"{n}.png")) for n in ("blurry", "restored", "sharp"))
    gain = peak_signal_noise_ratio(sharp, restored) - peak_signal_noise_ratio(sharp, blurry)
    assert gain == pytest.approx(s["quality"]["restored_psnr"] - s["quality"]["blurry_psnr"], abs=1e-6)
    assert gain > 1.0
    assert round(gain, 1) == snapshot(name="demo gain dB")
    assert "GoPro dataset, Nah et al." in r.stdout


@pytest.mark.slow
def test_demo_takes_the_users_photo_and_rejects_a_bad_one(tmp_path, capsys):
    """``demo --image``: the user's photo (a colour scikit-image crop here) at its own size, no ground truth so no
    PSNR; an unreadable photo is one line and exit 2, with nothing written."""
    from PIL import Image

    from nafnet_litert.cli import main

    from .conftest import photo_array

    photo = tmp_path / "mine.png"
    Image.fromarray((photo_array("rocket.jpg", (200, 150), (100, 200)) * 255).round().astype(np.uint8)).save(photo)
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--image", str(photo)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["quality"] is None and s["photo"] == "mine.png" and s["photo_size"] == "150x200"
    assert not (out / "sharp.png").exists()
    assert Image.open(out / "restored.png").size == (150, 200)
    assert Image.open(out / "compare.png").size == (2 * 150 + 8, 200)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG not really")
    capsys.readouterr()
    assert main(["demo", "-o", str(tmp_path / "demo2"), "--image", str(bad)]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "not a readable image" in err[0]
    assert not (tmp_path / "demo2").exists()
