"""The public surface: ``import nafnet_litert as nl`` with ``__version__``, ``load``, ``export``, ``audit``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import nafnet_litert as nl
from nafnet_litert.models.checkpoint import Checkpoint

from tests.conftest import skimage_photo


def test_version_is_the_projects_and_answers_without_torch():
    """``--version`` and ``nl.__version__`` say what pyproject.toml says, and ``--version`` imports no PyTorch."""
    import subprocess
    import sys
    import tomllib
    from pathlib import Path

    declared = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["version"]
    assert nl.__version__ == declared
    code = ("import sys; from nafnet_litert.cli import main\n"
            "try: main(['--version'])\nexcept SystemExit: pass\n"
            "print('torch' in sys.modules)")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.split() == ["nafnet-litert", declared, "False"], r.stdout


def test_package_and_litert_runtime_import_without_torch_or_touching_the_environment():
    code = (
        "import os; env = dict(os.environ);"
        "import sys, nafnet_litert, nafnet_litert.litert.runtime, nafnet_litert.litert.graph, nafnet_litert.litert.device_ops,"
        " nafnet_litert.io.image, nafnet_litert.restore.restorer, nafnet_litert.litert.cache, nafnet_litert.metrics;"
        "bad = [m for m in ('torch', 'litert_torch') if m in sys.modules] + [k for k in set(env) ^ set(os.environ)];"
        "print(bad); sys.exit(1 if bad or env != dict(os.environ) else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture(scope="module")
def small_export(tmp_path_factory):
    """A small checkpoint file and its 64x64 fp32 export through ``nl.export`` (from the file's path), once."""
    from nafnet_litert.models.checkpoint import random_checkpoint, save_safetensors

    from tests.conftest import SMALL

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


def test_restorer_leaves_process_state_alone(small_export):
    """PyTorch's thread count is process-wide: a restorer uses its own only while it runs and puts the caller's back;
    a .tflite restorer takes its tile size from the file without touching anything the caller passed."""
    import numpy as np
    import torch

    ck, _, model = small_export
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    seen = []
    with nl.Restorer(ck, backend="torch", full_frame=True, tlc=False, threads=target) as restorer:
        restorer.torch_net().register_forward_pre_hook(lambda module, args: seen.append(torch.get_num_threads()))
        out = restorer(np.random.default_rng(0).random((32, 48, 3), dtype=np.float32))
    assert out.shape == (32, 48, 3) and seen == [target] and torch.get_num_threads() == before

    options = {"tile": 256, "overlap": 48}
    with nl.Restorer(str(model), **options) as restorer:
        assert restorer.options.tile == 64 and restorer.options.overlap == 32
    assert options == {"tile": 256, "overlap": 48}


def test_bench_bad_threads_is_one_line(tmp_path):
    for bad, msg in (("1,x", "comma-separated whole numbers"), ("0", "at least 1")):
        r = subprocess.run(
            [sys.executable, "-m", "nafnet_litert.cli", "bench", "--threads", bad], capture_output=True, text=True
        )
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2 and len(lines) == 1 and msg in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_litert_model_and_restorer_are_context_managers(small_export):
    import numpy as np

    from nafnet_litert.errors import NafnetLitertError
    from nafnet_litert.litert import LiteRTModel

    model = small_export[2]
    x = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    with LiteRTModel(model) as m:
        y = m.run(x)
    with pytest.raises(ValueError, match="closed"):
        m.run(x)
    with nl.Restorer(str(model)) as restorer:
        out = restorer(np.ascontiguousarray(x[0].transpose(1, 2, 0)))
    assert np.abs(out - y[0].transpose(1, 2, 0)).max() <= 1e-6  # one tile: the model itself
    assert restorer.loaded_sizes == []
    with pytest.raises(NafnetLitertError, match="torch backend needs the checkpoint"):
        nl.Restorer(str(model), backend="torch")


@pytest.mark.parametrize(
    "options, message",
    [
        ({"tile": 0}, "positive number of pixels"),  # its multiple is the network's: the Restorer checks it
        ({"tile": 64, "overlap": 64}, "overlap must be"),
        ({"backend": "onnx"}, "unknown backend"),
        ({"precision": "int4"}, "unknown precision"),
        ({"threads": 0}, "threads must be"),
        ({"backend": "torch", "gpu": True}, "litert backend"),
    ],
)
def test_restorer_options_are_validated(options, message):
    from nafnet_litert.errors import NafnetLitertError

    with pytest.raises(NafnetLitertError, match=message):
        nl.RestoreOptions(**options)
    with pytest.raises(TypeError, match="unknown Restorer option"):
        nl.Restorer("default", tiles=3)


def test_deblur_takes_restore_options_whole_and_refuses_loose_ones(tmp_path):
    """``nl.deblur(..., options=RestoreOptions(...))`` runs the network those options make (the pixels of a
    :class:`Restorer` built from the same options); option names outside ``options`` are a TypeError."""
    import numpy as np
    from PIL import Image

    from nafnet_litert.models.checkpoint import random_checkpoint, save_safetensors

    from tests.conftest import SMALL

    ckpt = tmp_path / "small.safetensors"
    save_safetensors(random_checkpoint(SMALL, seed=3, scale=0.3).state_dict, ckpt)
    img = np.random.default_rng(2).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "in.png")
    options = nl.RestoreOptions(backend="torch", tile=32, overlap=8)
    stats = nl.deblur(tmp_path / "in.png", tmp_path / "out.png", model=str(ckpt), options=options, compare=True)
    assert stats.images == 1 and (tmp_path / "out_compare.png").is_file()
    with nl.Restorer(str(ckpt), options) as restorer:
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), restorer(img))
    with pytest.raises(TypeError, match="tile"):
        nl.deblur(tmp_path / "in.png", tmp_path / "b.png", model=str(ckpt), tile=32)
    with pytest.raises(TypeError, match="tiles"):
        nl.RestoreOptions(tiles=32)
    with pytest.raises(TypeError, match="RestoreOptions"):
        nl.deblur(tmp_path / "in.png", tmp_path / "c.png", model=str(ckpt), options={"tile": 32})
    with pytest.raises(TypeError, match="not both"):
        nl.Restorer(str(ckpt), options, tile=32)
    assert not (tmp_path / "b.png").exists() and not (tmp_path / "c.png").exists()


def test_restorer_export_cache_is_keyed_by_versions_and_temp_models_are_cleaned(tmp_path, monkeypatch):
    import numpy as np

    from nafnet_litert.models.checkpoint import random_checkpoint, save_safetensors
    from nafnet_litert.litert.cache import export_key

    from tests.conftest import SMALL

    cache = tmp_path / "cache"
    monkeypatch.setenv("NAFNET_LITERT_CACHE", str(cache))
    ckpt = tmp_path / "small.safetensors"
    save_safetensors(random_checkpoint(SMALL, seed=3, scale=0.3).state_dict, ckpt)
    img = np.random.default_rng(1).random((32, 32, 3), dtype=np.float32)
    opts = dict(tile=32, overlap=8, precision="fp32")
    with nl.Restorer(str(ckpt), **opts) as restorer:
        first = restorer(img)
    [cached] = cache.glob("*.tflite")
    assert export_key() in cached.name
    with nl.Restorer(str(ckpt), **opts) as restorer:  # same versions: the cached model is reused
        assert np.array_equal(restorer(img), first)
    assert list(cache.glob("*.tflite")) == [cached]
    # From here on only naming and clean-up are under test: "export" copies the first model (no converter run).
    exports = []

    def fake_export(ck, path, *args, **kwargs):
        exports.append(Path(path))
        shutil.copyfile(cached, path)

    exp = sys.modules["nafnet_litert.litert.convert"]
    monkeypatch.setattr(exp, "export", fake_export)
    # an upgrade of litert-torch (or of this package) changes the key: a new export, never the old graph
    real = exp.library_versions
    monkeypatch.setattr(exp, "library_versions", lambda: {**real(), "litert-torch": "9.9.9"})
    with nl.Restorer(str(ckpt), **opts) as restorer:
        assert np.array_equal(restorer(img), first)
    assert len(list(cache.glob("*.tflite"))) == 2 and exports[0].parent == cache and exports[0] != cached
    # a checkpoint without a file (random:, stress:) exports into a folder of its own, removed on close
    restorer = nl.Restorer(str(ckpt), **opts)
    restorer.ckpt.sha256 = None
    restorer(img)
    folder = restorer.export_folder
    assert folder is not None
    assert any(folder.glob("*.tflite")) and exports[1].parent == folder
    restorer.close()
    assert not folder.exists()


def test_every_public_name_resolves_and_errors_share_one_base():
    """``__all__`` names exist; every error class is in nafnet_litert.errors and is a NafnetLitertError."""
    import inspect

    from nafnet_litert import errors

    assert [n for n in nl.__all__ if not hasattr(nl, n)] == []
    classes = {n: getattr(nl, n) for n in nl.__all__ if inspect.isclass(getattr(nl, n))}
    raised = [c for c in classes.values() if issubclass(c, Exception)]
    assert len(raised) >= 13 and all(issubclass(c, errors.NafnetLitertError) for c in raised)
    assert all(c.__module__ == "nafnet_litert.errors" for c in raised)
    defined = [n for n, c in vars(errors).items() if inspect.isclass(c) and issubclass(c, Exception)]
    assert sorted(defined) == sorted(c.__name__ for c in raised)  # every error is exported
