"""The HTML audit report: one self-contained file, rendered in headless Chromium, with its key numbers."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image


from tests.conftest import skimage_photo


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("CI must render the report: apt-get install chromium")
        pytest.skip("no chromium to render the report (apt-get install chromium)")
    return exe


@pytest.mark.slow
def test_report_renders_with_key_numbers(tmp_path, small_exports, small_checkpoint_file):
    from nafnet_litert.litert import GpuUnavailable, ensure_vulkan_icd

    try:
        ensure_vulkan_icd()
    except GpuUnavailable as e:
        if os.environ.get("CI"):
            pytest.fail(str(e))
        pytest.skip(str(e))
    ckpt = small_checkpoint_file
    model = small_exports["fp16"].model_path  # the session's small fp16 export (the report's size is no claim)
    html_path = tmp_path / "audit.html"
    photo = str(skimage_photo("chelsea.png"))
    r = subprocess.run(
        [sys.executable, "-m", "nafnet_litert.cli", "audit", str(model), "--reference", str(ckpt), "--image", photo,
         "--gpu", "--fp16", "--report", str(html_path), "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    js = json.loads(r.stdout)
    assert js["passed"] and set(js["checks"]) == {
        "ops", "forms", "rank", "io", "parity_cpu", "gpu_fp32", "gpu_fp16", "fp16_headroom"
    }
    assert all(c["passed"] for c in js["checks"].values())
    h = js["checks"]["fp16_headroom"]
    assert h["weights"]["overflow_count"] == 0 and h["stress"]["overflow_count"] == 0
    text = html_path.read_text()
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text  # self-contained
    corr = js["checks"]["parity_cpu"]["images"][0]["vs_reference"]["corr"]
    for needle in ["Verdict: PASS", f"{corr:.7f}", str(js["static"]["node_count"]), "GPU fp16 (ours)",
                   "GPU fp16, straight conversion", "straight", "stressed twin"]:  # fmt: skip
        assert needle in text, needle
    # input, reference, CPU, GPU fp32, GPU fp16, straight fp16 + two residual maps
    assert len(re.findall(r"data:image/png;base64,", text)) == 8

    shot = tmp_path / "shot.png"
    subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'prof'}",
         "--window-size=1200,2400", f"--screenshot={shot}", html_path.as_uri()],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    img = np.asarray(Image.open(shot).convert("RGB")).astype(np.float32)
    assert img.shape[:2] == (2400, 1200)
    assert img.std() > 20  # not blank
    assert (img[..., 1] - img[..., 0] > 60).sum() > 500  # green PASS text and green headroom bars are drawn
