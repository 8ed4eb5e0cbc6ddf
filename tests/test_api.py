"""The public surface: ``import nafnet_litert as nl`` with ``__version__``, ``load``, ``export``, ``audit``."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import nafnet_litert as nl
from nafnet_litert.checkpoint import Checkpoint

from .conftest import skimage_photo


def test_version_is_the_installed_distribution():
    assert nl.__version__ == metadata.version("nafnet-litert")


def test_package_and_litert_runtime_import_without_torch():
    code = (
        "import sys, nafnet_litert, nafnet_litert.runtime.litert, nafnet_litert.tflite_graph, nafnet_litert.device_ops;"
        "bad = [m for m in ('torch', 'litert_torch') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture(scope="module")
def small_export(tmp_path_factory):
    """A small checkpoint file and its 64x64 fp32 export through ``nl.export`` (from the file's path), once."""
    from nafnet_litert.checkpoint import random_checkpoint, save_safetensors

    from .conftest import SMALL

    d = tmp_path_factory.mktemp("api")
    ck = random_checkpoint(SMALL, seed=3, scale=0.3)
    small = d / "small.safetensors"
    save_safetensors(ck.state_dict, small)
    res = nl.export(str(small), d / "m.tflite", size=64, precision="fp32")
    return ck, small, res.model_path


def test_load_export_audit_round_trip(small_export):
    ck = nl.load("random:GoPro-width32@5")
    assert isinstance(ck, Checkpoint) and ck.config.width == 32
    _, small, model = small_export
    report = nl.audit(model, str(small), [skimage_photo("coffee.png")])
    assert report.passed, report.format_text()
    m = report.checks["parity_cpu"].data["images"][0]["vs_reference"]
    assert m["corr"] >= 0.999999 and m["max_abs"] <= 1e-4


def test_torch_restorer_and_deblurrer_leave_process_state_alone(small_export):
    """PyTorch's thread count is process-wide: a restorer uses its own only while it runs; the options a caller
    hands to Deblurrer are not changed (a .tflite model used to overwrite its tile and overlap)."""
    import dataclasses

    import numpy as np
    import torch

    from nafnet_litert.deblur import Deblurrer, DeblurOptions
    from nafnet_litert.runtime import TorchRestorer

    ck, _, model = small_export
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    seen = []
    restorer = TorchRestorer(ck, threads=target)
    net = restorer.net
    restorer.net = lambda x: (seen.append(torch.get_num_threads()), net(x))[1]
    out = restorer(np.random.default_rng(0).random((32, 48, 3), dtype=np.float32))
    assert out.shape == (32, 48, 3) and seen == [target] and torch.get_num_threads() == before

    opts = DeblurOptions(model=str(model), tile=256, overlap=48)
    snapshot = dataclasses.asdict(opts)
    deb = Deblurrer(opts)
    assert dataclasses.asdict(opts) == snapshot
    assert deb.opts.tile == 64 and deb.opts.overlap == 32


def test_bench_bad_threads_is_one_line(tmp_path):
    for bad, msg in (("1,x", "comma-separated whole numbers"), ("0", "at least 1")):
        r = subprocess.run(
            [sys.executable, "-m", "nafnet_litert.cli", "bench", "--threads", bad], capture_output=True, text=True
        )
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2 and len(lines) == 1 and msg in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_litert_model_and_deblurrer_are_context_managers(small_export):
    import numpy as np

    from nafnet_litert.deblur import Deblurrer, DeblurOptions
    from nafnet_litert.errors import NafnetLitertError
    from nafnet_litert.runtime import LiteRTModel

    model = small_export[2]
    x = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    with LiteRTModel(model) as m:
        y = m.run(x)
    with pytest.raises(ValueError, match="closed"):
        m.run(x)
    with Deblurrer(DeblurOptions(model=str(model))) as deb:
        out = deb.restore(np.ascontiguousarray(x[0].transpose(1, 2, 0)))
    assert np.abs(out - y[0].transpose(1, 2, 0)).max() <= 1e-6  # one tile: the model itself
    assert deb._lite == {}
    with pytest.raises(NafnetLitertError, match="torch backend needs the checkpoint"):
        Deblurrer(DeblurOptions(model=str(model), backend="torch"))


def test_deblur_export_cache_is_keyed_by_versions_and_temp_models_are_cleaned(tmp_path, monkeypatch):
    import numpy as np

    from nafnet_litert.checkpoint import random_checkpoint, save_safetensors
    from nafnet_litert.deblur import Deblurrer, DeblurOptions, export_key

    from .conftest import SMALL

    cache = tmp_path / "cache"
    monkeypatch.setenv("NAFNET_LITERT_CACHE", str(cache))
    ckpt = tmp_path / "small.safetensors"
    save_safetensors(random_checkpoint(SMALL, seed=3, scale=0.3).state_dict, ckpt)
    img = np.random.default_rng(1).random((32, 32, 3), dtype=np.float32)
    opts = DeblurOptions(model=str(ckpt), tile=32, overlap=8, precision="fp32")
    with Deblurrer(opts) as deb:
        first = deb.restore(img)
    [cached] = cache.glob("*.tflite")
    assert export_key() in cached.name
    with Deblurrer(opts) as deb:  # same versions: the cached model is reused
        assert np.array_equal(deb.restore(img), first)
    assert list(cache.glob("*.tflite")) == [cached]
    # an upgrade of litert-torch (or of this package) changes the key: a new export, never the old graph
    exp = sys.modules["nafnet_litert.export"]
    real = exp.library_versions
    monkeypatch.setattr(exp, "library_versions", lambda: {**real(), "litert-torch": "9.9.9"})
    with Deblurrer(opts) as deb:
        deb.restore(img)
    assert len(list(cache.glob("*.tflite"))) == 2
    # a checkpoint without a file (random:, stress:) exports into a folder of its own, removed on close
    deb = Deblurrer(opts)
    deb.ckpt.sha256 = None
    deb.restore(img)
    folder = Path(deb._tmp.name)
    assert any(folder.glob("*.tflite"))
    deb.close()
    assert not folder.exists()
