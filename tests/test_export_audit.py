"""Export with litert-torch and audit: GPU-clean graph, all blocks present, parity on real photos, sizes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from nafnet_litert.audit import BANNED_OPS, audit, parity_metrics, static_audit
from nafnet_litert.errors import ExportError
from nafnet_litert.export import convert_to_tflite, export, parse_size

from .conftest import skimage_photo

PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png"]


@pytest.mark.slow
def test_w32_graph_is_gpu_clean_and_complete(exported_w32):
    for precision, res in exported_w32.items():
        st = static_audit(res.model_path)
        s = st.summary()
        assert st.gpu_clean, s
        assert s["banned_ops"] == {} and s["max_rank"] <= 4
        hist = s["op_histogram"]
        # every one of the 36 NAFBlocks survived conversion (zero-scaled blocks would be constant-folded away)
        assert hist["DEPTHWISE_CONV_2D"] == 36
        # lean graph: LayerNorm means are 1x1 convs; the two single-axis pooling means remain per block
        assert hist["MEAN"] == 36 * 2 and hist["RSQRT"] == 36 * 2
        assert s["node_count"] - hist.get("DEQUANTIZE", 0) <= 1000  # 1605 before the lean rewrite
        # one SPLIT per gate and one DEPTH_TO_SPACE per upsampler, no SLICE / resize interleaving left
        assert hist["SPLIT"] == 36 and hist["DEPTH_TO_SPACE"] == 4
        assert "SLICE" not in hist and "RESIZE_NEAREST_NEIGHBOR" not in hist
        # convs: intro, ending, 4 downs, 4 ups x 1 ... at least 5 pointwise convs per block
        assert hist["CONV_2D"] >= 36 * 5
        assert s["transpose_count"] <= 2  # NCHW paid once at the edges
        assert st.precision == precision
        assert s["io"]["inputs"][0]["shape"] == [1, 3, 256, 256]
        assert s["signatures"][0]["inputs"] == ["image"] and s["signatures"][0]["outputs"] == ["restored"]


def test_lean_export_is_smaller_and_as_exact(tmp_path, small_checkpoint):
    photo = [skimage_photo("chelsea.png")]
    counts = {}
    for lean in (False, True):
        res = export(small_checkpoint, tmp_path / f"m_{lean}.tflite", 64, "fp32", lean=lean)
        counts[lean] = res.sidecar["audit"]["node_count"]
        hist = res.sidecar["audit"]["op_histogram"]
        if lean:  # the native ops replaced chunk's SLICE pairs and the interleaving upsamplers
            n_blocks = hist["DEPTHWISE_CONV_2D"]
            assert hist["SPLIT"] == n_blocks and hist["DEPTH_TO_SPACE"] == len(small_checkpoint.config.dec_blocks)
            assert "SLICE" not in hist and "RESIZE_NEAREST_NEIGHBOR" not in hist
        rep = audit(res.model_path, small_checkpoint, photo)
        assert rep.passed and rep.parity[0].metrics["max_abs"] <= 1e-4, rep.format_text()
    assert counts[True] < 0.75 * counts[False], counts


@pytest.mark.slow
def test_w32_sizes(exported_w32):
    fp16 = exported_w32["fp16"].model_path.stat().st_size
    fp32 = exported_w32["fp32"].model_path.stat().st_size
    assert 34.2e6 <= fp16 <= 36e6, fp16  # 2 bytes/parameter floor .. the target
    assert 68.4e6 <= fp32 <= 70e6, fp32


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_w32_parity_on_real_photos(exported_w32, w32_checkpoint, precision):
    res = exported_w32[precision]
    report = audit(res.model_path, w32_checkpoint, [skimage_photo(p) for p in PHOTOS])
    assert report.passed, report.format_text()
    for p in report.parity:
        m = p.metrics
        if precision == "fp32":
            assert m["corr"] >= 0.999999 and m["max_abs"] <= 1e-4, m
        else:
            assert m["corr"] >= 0.9999, m


@pytest.mark.slow
def test_sidecar_records_provenance(exported_w32):
    res = exported_w32["fp16"]
    s = json.loads(res.sidecar_path.read_text())
    assert s["config"]["enc_blocks"] == [1, 1, 1, 28]
    assert s["size"] == {"height": 256, "width": 256}
    assert s["precision"] == "fp16" and s["layout"] == "NCHW"
    import hashlib

    assert s["model_sha256"] == hashlib.sha256(res.model_path.read_bytes()).hexdigest()
    assert s["versions"]["litert-torch"].startswith("0.10")
    assert s["audit"]["gpu_clean"] is True


def test_parity_metrics_against_numpy():
    rng = np.random.default_rng(0)
    a = rng.random((1, 3, 8, 8)).astype(np.float32)
    b = a + rng.normal(0, 1e-3, a.shape).astype(np.float32)
    m = parity_metrics(b, a)
    assert m["corr"] == pytest.approx(np.corrcoef(a.ravel(), b.ravel())[0, 1], abs=1e-12)
    assert m["max_abs"] == pytest.approx(np.abs(a - b).max())
    assert m["psnr"] == pytest.approx(10 * np.log10(1 / np.mean((a.astype(np.float64) - b) ** 2)))
    bad = b.copy()
    bad[0, 0, 0, 0] = np.nan
    assert parity_metrics(bad, a)["finite"] is False


@pytest.mark.parametrize("text, expected", [("256", (256, 256)), ("720x1280", (720, 1280)), (" 64X32 ", (64, 32))])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


def test_size_not_multiple_of_16_is_a_clear_error(tmp_path, small_checkpoint):
    with pytest.raises(ExportError, match="not a multiple of 16"):
        export(small_checkpoint, tmp_path / "m.tflite", "250x256")
    assert list(tmp_path.iterdir()) == []


class _Cumsum(nn.Module):
    def forward(self, image):
        return torch.cumsum(image, dim=3)


class _Pow(nn.Module):
    def forward(self, image):
        return image.pow(2.5) + 1


class _FiveD(nn.Module):
    def forward(self, image):
        n, c, h, w = image.shape
        x = image.reshape(n, c, h // 2, 2, w) * 2
        return x.reshape(n, c, h, w)


@pytest.mark.parametrize("module, problem", [(_Cumsum(), "CUMSUM"), (_Pow(), "POW"), (_FiveD(), "rank")])
def test_audit_rejects_gpu_hostile_graphs(tmp_path, module, problem):
    buf = convert_to_tflite(module.eval(), (16, 16), "fp32")
    path = tmp_path / "bad.tflite"
    path.write_bytes(buf)
    st = static_audit(path)
    assert not st.gpu_clean
    if problem == "rank":
        assert st.graph.max_rank() == 5 and st.ops_above_4d
    else:
        assert problem in BANNED_OPS and problem in st.banned
    r = subprocess.run(
        [sys.executable, "-m", "nafnet_litert.cli", "audit", str(path), "--json"], capture_output=True, text=True
    )
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert out["passed"] is False and out["static"]["gpu_clean"] is False


@pytest.mark.slow
def test_cli_convert_and_audit_small_model_nhwc(tmp_path, small_checkpoint):
    from nafnet_litert.checkpoint import save_safetensors

    ckpt = tmp_path / "small.safetensors"
    save_safetensors(small_checkpoint.state_dict, ckpt)
    out = tmp_path / "small_nhwc.tflite"
    cli = [sys.executable, "-m", "nafnet_litert.cli"]
    r = subprocess.run(
        cli + ["convert", str(ckpt), "-o", str(out), "--size", "64x96", "--precision", "fp32", "--nhwc"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "GPU-clean: yes" in r.stdout
    st = static_audit(out).summary()
    assert st["io"]["inputs"][0]["shape"] == [1, 64, 96, 3]
    assert st["transpose_count"] == 0  # NHWC contract: no layout shuffles at all
    r = subprocess.run(
        cli + ["audit", str(out), "--reference", str(ckpt), "--image", str(skimage_photo("astronaut.png")), "--json"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    rep = json.loads(r.stdout)
    m = rep["parity"][0]["metrics"]
    assert rep["passed"] and m["corr"] >= 0.999999 and m["max_abs"] <= 1e-4, m


@pytest.mark.parametrize(
    "content, message",
    [(None, "model not found"), (b"not a flatbuffer at all", "not a LiteRT/TFLite flatbuffer")],
    ids=["missing", "garbage"],
)
def test_cli_audit_bad_model_is_one_line_exit_2(tmp_path, content, message):
    p = tmp_path / "m.tflite"
    if content is not None:
        p.write_bytes(content)
    r = subprocess.run([sys.executable, "-m", "nafnet_litert.cli", "audit", str(p)], capture_output=True, text=True)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.stderr


def test_cli_convert_bad_size_and_output(tmp_path, small_checkpoint):
    from nafnet_litert.checkpoint import save_safetensors

    ckpt = tmp_path / "s.safetensors"
    save_safetensors(small_checkpoint.state_dict, ckpt)
    cli = [sys.executable, "-m", "nafnet_litert.cli", "convert", str(ckpt)]
    for extra, msg in [
        (["-o", str(tmp_path / "a.tflite"), "--size", "100"], "not a multiple of 16"),
        (["-o", str(tmp_path / "a.tflite"), "--size", "big"], "bad size"),
        (["-o", str(tmp_path / "nodir" / "a.tflite")], "output folder does not exist"),
        (["-o", str(tmp_path / "a.onnx")], "must end in .tflite"),
    ]:
        r = subprocess.run(cli + extra, capture_output=True, text=True)
        assert r.returncode == 2, (extra, r.stderr)
        assert msg in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.safetensors"]
