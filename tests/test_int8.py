"""``convert --precision int8``: weight-only int8 (ai-edge-quantizer), the same I/O contract, audited like the other
precisions, a quarter of the fp32 weights, and the bundled model's held-out GoPro score within 0.02 dB of fp32."""

from __future__ import annotations

import numpy as np
import pytest

import nafnet_litert as nl
from nafnet_litert.litert.convert import quantize_int8
from nafnet_litert.litert.static_audit import static_audit
from nafnet_litert.verify.audit import PARITY_THRESHOLDS

from .conftest import skimage_photo


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("int8")
    ck = nl.load("default")
    return ck, {p: nl.export(ck, d / f"m_{p}.tflite", size=128, precision=p) for p in ("fp32", "int8")}


def test_int8_export_is_small_recorded_and_passes_the_audit(int8_model):
    ck, res = int8_model
    q = res["int8"]
    assert q.sidecar["precision"] == "int8"
    assert q.sidecar["quantization"] == {"tool": "ai-edge-quantizer", "recipe": "weight_only_wi8_afp32"}
    assert q.model_path.stat().st_size < 0.35 * res["fp32"].model_path.stat().st_size  # measured 0.31
    st = static_audit(q.model_path)
    assert st.precision == "int8" and st.histogram.get("DEQUANTIZE", 0) > 0
    report = nl.audit(q.model_path, ck, [skimage_photo(n) for n in ("chelsea.png", "coffee.png")])
    assert report.passed, report.format_text()
    for im in report.checks["parity_cpu"].data["images"]:
        m = im["vs_reference"]
        assert m["corr"] >= PARITY_THRESHOLDS["int8"]["corr"] and m["max_abs"] <= 1 / 255
        assert m["max_abs"] > 1e-6  # int8 weights really change the numbers (an fp32 file gives ~1e-7)
    with nl.Restorer(str(q.model_path)) as r:  # the same NCHW float32 contract: runs as a tile model
        out = r(np.zeros((40, 50, 3), np.float32))
    assert out.shape == (40, 50, 3)


@pytest.mark.slow
def test_w32_int8_is_a_quarter_of_fp32(exported_w32):
    """GoPro-w32 int8: 18.96 MB measured against 69.4 MB fp32 (issue #16's target was 18.5 MB: not reached; the
    rest is fp32 constants the weight-only recipe leaves alone, chiefly the upsamplers' parity masks)."""
    fp32 = exported_w32["fp32"].model_path.read_bytes()
    buf = quantize_int8(fp32)
    assert len(buf) <= 0.28 * len(fp32) and len(buf) <= 19.0e6, len(buf)
    st = static_audit(buf)
    assert st.ops_check().passed and st.precision == "int8"


@pytest.mark.slow
def test_bundled_int8_scores_within_0_02_db_of_fp32_on_held_out_gopro(int8_model, shared_data):
    """The five held-out 1280x720 GoPro frames through the same tiler with the fp32 and the int8 file (128 px tiles
    here; README's 23.7196 vs 23.7224 dB are at 256)."""
    from nafnet_litert.eval import evaluate, find_pairs

    pairs = find_pairs(shared_data / "gopro_frames")
    means = {}
    for precision, res in int8_model[1].items():
        with nl.Restorer(str(res.model_path)) as r:
            means[precision] = evaluate(r, pairs, progress=False).mean["model_psnr"]
    assert abs(means["int8"] - means["fp32"]) <= 0.02, means
