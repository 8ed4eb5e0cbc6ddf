"""The public surface: ``import nafnet_litert as nl`` with ``__version__``, ``load``, ``export``, ``audit``."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

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


def test_load_export_audit_round_trip(tmp_path):
    ck = nl.load("random:GoPro-width32@5")
    assert isinstance(ck, Checkpoint) and ck.config.width == 32
    from .conftest import SMALL
    from nafnet_litert.checkpoint import random_checkpoint, save_safetensors

    small = tmp_path / "small.safetensors"
    save_safetensors(random_checkpoint(SMALL, seed=3, scale=0.3).state_dict, small)
    res = nl.export(str(small), tmp_path / "m.tflite", size=64, precision="fp32")
    report = nl.audit(res.model_path, str(small), [skimage_photo("coffee.png")])
    assert report.passed, report.format_text()
    m = report.checks["parity_cpu"].data["images"][0]["vs_reference"]
    assert m["corr"] >= 0.999999 and m["max_abs"] <= 1e-4
