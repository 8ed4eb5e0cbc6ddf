"""Checkpoint loading: containers, formats, detection of every preset, and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from nafnet_litert.models.checkpoint import (
    detect_config,
    load_checkpoint,
    random_checkpoint,
    resolve_checkpoint,
    save_safetensors,
)
from nafnet_litert.errors import CheckpointError
from nafnet_litert.models import PRESETS, NAFNet, NAFNetConfig, preset_name

from tests.conftest import SMALL

CONFIGS = [
    SMALL,
    NAFNetConfig(img_channel=1, width=12, enc_blocks=(2, 3), middle_blocks=0, dec_blocks=(1, 2)),
    NAFNetConfig(width=16, enc_blocks=(1,), middle_blocks=3, dec_blocks=(2,)),
]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_detects_every_official_preset(name):
    sd = NAFNet(PRESETS[name]).state_dict()
    cfg = detect_config(sd)
    assert cfg == PRESETS[name]
    assert name in preset_name(cfg)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.describe())
@pytest.mark.parametrize("wrap", ["bare", "params", "params_ema", "module", "safetensors"])
def test_round_trip_any_layout_and_container(tmp_path, config, wrap):
    ck = random_checkpoint(config, seed=7)
    sd = ck.state_dict
    if wrap == "safetensors":
        path = tmp_path / "m.safetensors"
        save_safetensors(sd, path)
    else:
        path = tmp_path / "m.pth"
        obj = {
            "bare": sd,
            "params": {"params": sd},
            "params_ema": {"params": {k: torch.zeros_like(v) for k, v in sd.items()}, "params_ema": sd},
            "module": {f"module.{k}": v for k, v in sd.items()},
        }[wrap]
        torch.save(obj, path)
    loaded = load_checkpoint(path)
    assert loaded.config == config
    assert len(loaded.sha256) == 64
    for k, v in sd.items():
        assert torch.equal(loaded.state_dict[k], v), k
    x = torch.rand(1, config.img_channel, 32, 48)
    with torch.no_grad():
        assert torch.equal(loaded.build_reference()(x), ck.build_reference()(x))


class _Evil:
    def __reduce__(self):
        return (print, ("code ran",))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "checkpoint not found"),
        (lambda p: torch.save({"conv.weight": torch.zeros(3, 3)}, p), "not a NAFNet checkpoint"),
        (lambda p: p.write_bytes(_valid_bytes(p)[:5000]), "unreadable or truncated"),
        (lambda p: p.write_bytes(b"hello, not a checkpoint"), "checkpoint"),
        (lambda p: torch.save({"params": {"x": torch.zeros(1)}, "evil": _Evil()}, p), "refusing to unpickle"),
        (lambda p: torch.save(_wrong_shape(), p), "wrong shapes, first: intro.bias"),
        (lambda p: torch.save(_missing_key(), p), "missing keys, first: ending.bias"),
    ],
    ids=["missing", "not-nafnet", "truncated", "garbage", "pickle-code", "wrong-shape", "missing-key"],
)
def test_bad_checkpoints_raise_one_line_errors(tmp_path, make, message):
    p = tmp_path / "bad.pth"
    make(p)
    with pytest.raises(CheckpointError) as ei:
        load_checkpoint(p)
    text = str(ei.value)
    assert message in text
    assert "\n" not in text


def _valid_bytes(p):
    torch.save(NAFNet(SMALL).state_dict(), p)
    return p.read_bytes()


def _wrong_shape():
    sd = NAFNet(SMALL).state_dict()
    sd["intro.bias"] = torch.zeros(5)
    return sd


def _missing_key():
    sd = NAFNet(SMALL).state_dict()
    del sd["ending.bias"]
    return sd


def test_truncated_safetensors(tmp_path):
    p = tmp_path / "m.safetensors"
    save_safetensors(NAFNet(SMALL), p)
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint(p)


def test_random_preset_spec_has_live_blocks():
    ck = resolve_checkpoint("random:GoPro-width32@5")
    betas = [v for k, v in ck.state_dict.items() if k.endswith(("beta", "gamma"))]
    assert len(betas) == 2 * 36
    assert all(v.abs().min() > 0 for v in betas)
    with pytest.raises(CheckpointError, match="unknown preset"):
        resolve_checkpoint("random:GoPro-width33")


def test_cli_bad_checkpoint_exits_2_with_one_line(tmp_path):
    p = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(3, 3)}, p)
    r = subprocess.run(
        [sys.executable, "-m", "nafnet_litert.cli", "convert", str(p), "-o", str(tmp_path / "o.tflite")],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "NAFNET_LITERT_VERBOSE": ""},
    )
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines == ["nafnet-litert convert: error: bad.pth: not a NAFNet checkpoint (no 'intro.weight'/'ending.weight'; first keys: conv.weight)"]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "o.tflite").exists()
