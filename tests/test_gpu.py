"""GPU residency on LiteRT's own GPU accelerator (ML Drift/WebGPU), on SwiftShader when there is no GPU.

Skipped only outside CI when no Vulkan adapter is installed; in CI (CI=true) a missing adapter is a failure.
"""

from __future__ import annotations

import os

import pytest
import torch

from nafnet_litert.audit import audit
from nafnet_litert.runtime import GpuUnavailable, ensure_vulkan_icd

from .conftest import skimage_photo


@pytest.fixture(scope="module", autouse=True)
def _vulkan():
    try:
        ensure_vulkan_icd()
    except GpuUnavailable as e:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the GPU tests: {e}")
        pytest.skip(str(e))


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_w32_fully_accelerated_on_gpu_with_parity(exported_w32, w32_checkpoint, precision):
    report = audit(exported_w32[precision].model_path, w32_checkpoint, [skimage_photo("chelsea.png")], gpu=True)
    gpu = [p for p in report.parity if p.backend == "LiteRT GPU"][0]
    assert gpu.fully_accelerated is True
    assert gpu.metrics["corr"] >= 0.99999, gpu.metrics
    assert report.passed, report.format_text()


@pytest.mark.slow
def test_gpu_hostile_model_is_caught(tmp_path):
    """A GATHER_ND model (replicate padding lowers to it) is refused by the GPU accelerator, and the audit fails."""
    from nafnet_litert.audit import static_audit
    from nafnet_litert.export import convert_to_tflite

    class Pad(torch.nn.Module):
        def forward(self, image):
            return torch.nn.functional.pad(image, (2, 2, 2, 2), mode="replicate")[:, :, 2:-2, 2:-2] * 2

    path = tmp_path / "gather.tflite"
    path.write_bytes(convert_to_tflite(Pad().eval(), (16, 16), "fp32"))
    st = static_audit(path)
    assert "GATHER_ND" in st.banned and not st.gpu_clean
    from nafnet_litert.audit import run_parity

    class _Ref:  # the graph's own semantics, as a "reference" for the parity run
        def build_reference(self):
            return Pad().eval()

    res = run_parity(path, _Ref(), skimage_photo("chelsea.png"), accelerator="gpu")
    assert res.fully_accelerated is False and not res.passed
