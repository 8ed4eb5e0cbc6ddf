"""``convert --precision int8``: weight-only int8 (ai-edge-quantizer), the same I/O contract, audited like the other
precisions, a quarter of the fp32 weights, and the bundled model's held-out GoPro score within 0.02 dB of fp32."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import nafnet_litert as nl
from nafnet_litert.litert.convert import quantize_int8
from nafnet_litert.litert.static_audit import static_audit
from nafnet_litert.verify.parity import PARITY_THRESHOLDS

from .conftest import skimage_photo


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("int8")
    ck = nl.load("default")
    return ck, {p: nl.export(ck, d / f"m_{p}.tflite", size=128, precision=p) for p in ("fp32", "int8")}


def test_int8_export_is_small_recorded_and_passes_the_audit(int8_model, snapshot):
    ck, res = int8_model
    q = res["int8"]
    assert q.sidecar["precision"] == "int8"
    assert q.sidecar["quantization"]["recipe"] == "weight_only_wi8_afp32"
    assert q.sidecar["quantization"]["weights"]["DEPTHWISE_CONV_2D"] == "float16"
    ratio = q.model_path.stat().st_size / res["fp32"].model_path.stat().st_size
    assert ratio < 0.31
    assert round(ratio, 3) == snapshot(name="int8/fp32 bytes")
    st = static_audit(q.model_path)
    assert st.precision == "int8" and st.histogram.get("DEQUANTIZE", 0) > 0
    dtypes = {t.dtype for t in st.graph.tensors if t.buffer}
    assert {"INT8", "FLOAT16"} <= dtypes  # int8 convolutions, fp16 depthwise filters
    report = nl.audit(q.model_path, ck, [skimage_photo(n) for n in ("chelsea.png", "coffee.png")])
    assert report.passed, report.format_text()
    for im in report.checks["parity_cpu"].data["images"]:
        m, twin = im["vs_reference"], im["int8_twin"]
        assert m["corr"] >= 0.9999 and m["max_abs"] <= 1 / 255
        assert m["max_abs"] > 1e-6  # int8 weights really change the numbers (an fp32 file gives ~1e-7)
        # the file's error is the int8 rounding's: near its PyTorch twin's, not merely inside the limit
        assert abs(m["psnr"] - twin["psnr"]) < PARITY_THRESHOLDS["int8"]["psnr_below_twin_db"], (m, twin)
    with nl.Restorer(str(q.model_path)) as r:  # the same NCHW float32 contract: runs as a tile model
        out = r(np.zeros((40, 50, 3), np.float32))
    assert out.shape == (40, 50, 3)


def test_coarser_weights_fail_the_int8_parity(int8_model, tmp_path):
    """The int8 limit is not a rubber stamp: a file whose weights were rounded to 5 bits before the int8 export
    (a coarser quantizer) is judged against the checkpoint's own int8 twin and fails parity_cpu."""
    import torch

    ck, _ = int8_model
    sd = {}
    for k, w in ck.state_dict.items():
        if w.ndim == 4 and w.shape[1] > 1:  # full convolutions (not depthwise): 15 levels per output channel
            s = w.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12) / 15
            w = torch.round(w / s) * s
        sd[k] = w
    coarse = nl.export(replace(ck, state_dict=sd, sha256=None), tmp_path / "coarse.tflite", size=128, precision="int8")
    report = nl.audit(coarse.model_path, ck, [skimage_photo("chelsea.png")])
    c = report.checks["parity_cpu"]
    assert not c.passed, report.format_text()
    m, twin = c.data["images"][0]["vs_reference"], c.data["images"][0]["int8_twin"]
    assert m["psnr"] < twin["psnr"] - PARITY_THRESHOLDS["int8"]["psnr_below_twin_db"]


@pytest.mark.slow
def test_w32_int8_is_under_18_5_mb_and_passes_the_cpu_audit(exported_w32, w32_checkpoint, tmp_path, snapshot):
    """GoPro-w32 int8: under 18.5 MB against 68.5 MB fp32 (the exact bytes are in the snapshot), and the audit's CPU
    parity passes on that file against its int8 twin. (Its ``audit --gpu`` on lavapipe, README's "pass" for random
    w32, takes 90 s under the suite's load: ``python3 scripts/int8_audit.py`` measures it; the GPU passes of an int8
    file are tested on the small network below.)"""
    fp32 = exported_w32["fp32"].model_path.read_bytes()
    path = tmp_path / "w32_int8.tflite"
    path.write_bytes(quantize_int8(fp32))
    assert path.stat().st_size <= 18.5e6 and path.stat().st_size <= 0.28 * len(fp32), path.stat().st_size
    assert path.stat().st_size == snapshot(name="w32 int8 bytes")
    report = nl.audit(path, w32_checkpoint, [skimage_photo("chelsea.png")])
    assert report.static["weight_precision"] == "int8"
    assert report.passed, report.format_text()


@pytest.mark.slow
def test_bundled_int8_scores_within_0_02_db_of_fp32_on_held_out_gopro(int8_model, gopro_crops):
    """The five held-out GoPro pairs (384 x 512 centre crops) through the same tiler with the fp32 and the int8 file
    (128 px tiles here; README's 23.7196 vs 23.7219 dB are the full frames at 256, measured by scripts)."""
    from nafnet_litert.eval import evaluate, find_pairs

    pairs = find_pairs(gopro_crops)
    means = {}
    for precision, res in int8_model[1].items():
        with nl.Restorer(str(res.model_path)) as r:
            means[precision] = evaluate(r, pairs, progress=False).mean["model_psnr"]
    assert abs(means["int8"] - means["fp32"]) <= 0.02, means


def test_an_int8_file_passes_the_gpu_passes(small_exports, small_checkpoint, tmp_path, fp16_vulkan):
    """int8 weights on the GPU accelerator (lavapipe): every DEQUANTIZE runs there too (fully accelerated), the fp32
    pass matches the file's CPU output and the fp16 pass really runs fp16 within the audit's limits. The small
    network keeps the GPU compile short; README's w32 row is measured by ``scripts/int8_audit.py``."""
    path = tmp_path / "small_int8.tflite"
    path.write_bytes(quantize_int8(small_exports["fp32"].model_path.read_bytes()))
    report = nl.audit(path, small_checkpoint, [skimage_photo("chelsea.png")], gpu=True)
    assert report.static["weight_precision"] == "int8"
    assert report.passed, report.format_text()
    assert report.checks["gpu_fp32"].passed and report.checks["gpu_fp16"].data["fp16_exercised"] is True
