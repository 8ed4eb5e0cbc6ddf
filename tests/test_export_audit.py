"""Export with litert-torch and audit: GPU-clean graph, all blocks present, parity on real photos, sizes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from nafnet_litert.litert import device_ops
from nafnet_litert.litert.static_audit import static_audit
from nafnet_litert.verify.audit import audit
from nafnet_litert.verify.parity import parity_metrics
from nafnet_litert.errors import ExportError
from nafnet_litert.litert.convert import convert_to_tflite, export, parse_size

from tests.conftest import skimage_photo

PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png"]


@pytest.mark.slow
def test_w32_graph_is_gpu_clean_and_complete(exported_w32, snapshot):
    measured = {}
    for precision, res in exported_w32.items():
        st = static_audit(res.model_path)
        s = st.summary()
        assert st.gpu_clean, s
        assert s["rejected_ops"] == {} and s["unproven_ops"] == {} and s["rejected_forms"] == {}
        assert s["max_rank"] <= 4
        hist = s["op_histogram"]
        assert set(hist) <= set(device_ops.PROVEN), hist  # nothing a phone has not run before
        # every one of the 36 NAFBlocks survived conversion (zero-scaled blocks would be constant-folded away);
        # each gate's depthwise conv is split into its two halves (no SPLIT / SLICE in the gates)
        assert hist["DEPTHWISE_CONV_2D"] == 36 * 2
        # lean graph: LayerNorm means are 1x1 convs; the two single-axis pooling means remain per block
        assert hist["MEAN"] == 36 * 2 and hist["RSQRT"] == 36 * 2
        assert s["node_count_without_dequantize"] <= 1100  # the seed: 2179; our earlier non-lean graph: 1605
        measured[precision] = {"op_histogram": hist, "nodes": s["node_count_without_dequantize"]}
        # each upsampler in the seed's zero-stuff form: resize, grid mask, PAD, 2x2 conv, crop; no DEPTH_TO_SPACE
        assert hist["RESIZE_NEAREST_NEIGHBOR"] == 4 and hist["PAD"] == 4 and hist["SLICE"] == 4 * 2
        reads = st.forms_check().data["nearest_resizes"]
        assert len(reads) == 4 and all(r["on_grid"] and r["stride"] == [2, 2] for r in reads)
        # convs: intro, ending, 4 downs, 4 ups x 1 ... at least 5 pointwise convs per block
        assert hist["CONV_2D"] >= 36 * 5
        assert s["transpose_count"] <= 2  # NCHW paid once at the edges
        assert st.precision == precision
        assert s["io"]["inputs"][0]["shape"] == [1, 3, 256, 256]
        assert s["signatures"][0]["inputs"] == ["image"] and s["signatures"][0]["outputs"] == ["restored"]
    assert measured == snapshot  # the graphs' exact op counts (pytest --snapshot-update after a converter upgrade)


def test_lean_export_is_smaller_and_as_exact(tmp_path, small_checkpoint, small_exports, snapshot):
    photo = [skimage_photo("chelsea.png")]
    counts = {}
    n_blocks = sum(small_checkpoint.config.enc_blocks) + small_checkpoint.config.middle_blocks + sum(
        small_checkpoint.config.dec_blocks
    )
    n_ups = len(small_checkpoint.config.dec_blocks)
    for variant in ("deploy", "lean", "native"):
        if variant == "lean":  # the default recipe: the session's shared export
            res = small_exports["fp32"]
        else:
            res = export(
                small_checkpoint, tmp_path / f"m_{variant}.tflite", 64, "fp32", lean=variant != "deploy",
                native_ops=variant == "native",
            )  # fmt: skip
        counts[variant] = res.sidecar["audit"]["node_count"]
        hist = res.sidecar["audit"]["op_histogram"]
        rep = audit(res.model_path, small_checkpoint, photo)
        m = rep.checks["parity_cpu"].data["images"][0]["vs_reference"]
        assert rep.checks["parity_cpu"].passed and m["max_abs"] <= 1e-4, rep.format_text()
        if variant == "native":  # one SPLIT per gate, DEPTH_TO_SPACE upsamplers: rejected on phones, named
            assert hist["SPLIT"] == n_blocks and hist["DEPTH_TO_SPACE"] == n_ups
            assert not rep.passed and not rep.checks["ops"].passed
            assert set(rep.checks["ops"].data["rejected"]) == {"SPLIT", "DEPTH_TO_SPACE"}
            assert "SPLIT x" in rep.format_text() and "DEPTH_TO_SPACE x" in rep.format_text()
        else:
            assert rep.passed, rep.format_text()
            assert set(hist) <= set(device_ops.PROVEN), hist
        if variant == "lean":  # gates from split convolutions: the only SLICEs are the upsamplers' crops (H, W)
            assert hist["DEPTHWISE_CONV_2D"] == 2 * n_blocks and hist["SLICE"] == 2 * n_ups
    assert counts["native"] < counts["lean"] < 0.8 * counts["deploy"], counts
    assert counts == snapshot


@pytest.mark.slow
def test_w32_sizes(exported_w32, snapshot):
    fp16 = exported_w32["fp16"].model_path.stat().st_size
    fp32 = exported_w32["fp32"].model_path.stat().st_size
    assert 34.2e6 <= fp16 <= 36e6, fp16  # 2 bytes/parameter floor .. the target
    assert 68.4e6 <= fp32 <= 70e6, fp32
    assert {"fp16": fp16, "fp32": fp32} == snapshot  # bytes


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_w32_parity_on_real_photos(exported_w32, w32_checkpoint, precision):
    res = exported_w32[precision]
    report = audit(res.model_path, w32_checkpoint, [skimage_photo(p) for p in PHOTOS])
    assert report.passed, report.format_text()
    for row in report.checks["parity_cpu"].data["images"]:
        m = row["vs_reference"]
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
    assert s["rewrites"]["upsample"] == "zero_stuff" and s["rewrites"]["native_ops"] is False


def test_parity_metrics_against_numpy():
    rng = np.random.default_rng(0)
    a = rng.random((1, 3, 8, 8)).astype(np.float32)
    b = a + rng.normal(0, 1e-3, a.shape).astype(np.float32)
    m = parity_metrics(b, a)
    assert m["corr"] == pytest.approx(np.corrcoef(a.ravel(), b.ravel())[0, 1], abs=1e-12)
    assert m["max_abs"] == pytest.approx(np.abs(a - b).max())
    assert m["psnr"] == pytest.approx(10 * np.log10(1 / np.mean((a.astype(np.float64) - b) ** 2)))
    x = rng.random(a.shape).astype(np.float32)
    r = parity_metrics(b, a, x)["residual_corr"]
    a64, b64, x64 = (v.astype(np.float64).ravel() for v in (a, b, x))
    assert r == pytest.approx(np.corrcoef(a64 - x64, b64 - x64)[0, 1], abs=1e-12)
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


class _Tanh(nn.Module):  # TANH: in neither table
    def forward(self, image):
        return torch.tanh(image)


class _SelfDiv(nn.Module):  # DIV of a tensor by itself: a rejected form of DIV
    def forward(self, image):
        y = image + 1
        return y / y


class _MeanHW(nn.Module):  # a MEAN over H and W in one op: a rejected form of MEAN
    def forward(self, image):
        return image - image.mean((2, 3), keepdim=True)


def _cli_audit(path, *extra):
    r = subprocess.run(
        [sys.executable, "-m", "nafnet_litert.cli", "audit", str(path), "--json", *extra], capture_output=True, text=True
    )
    return r.returncode, (json.loads(r.stdout) if r.stdout.strip() else None), r.stderr


@pytest.mark.parametrize(
    "module, problem",
    [(_Cumsum(), "CUMSUM"), (_Pow(), "POW"), (_FiveD(), "rank"), (_SelfDiv(), "DIV_SAME_INPUTS"),
     (_MeanHW(), "MEAN_MULTI_AXIS")],
)  # fmt: skip
def test_audit_rejects_gpu_hostile_graphs(tmp_path, module, problem):
    buf = convert_to_tflite(module.eval(), (16, 16), "fp32")
    path = tmp_path / "bad.tflite"
    path.write_bytes(buf)
    st = static_audit(path)
    assert not st.gpu_clean
    code, out, err = _cli_audit(path)
    assert code == 1, err
    assert out["passed"] is False and out["static"]["gpu_clean"] is False
    if problem == "rank":
        assert st.graph.max_rank() == 5 and st.ops_above_4d
        assert out["checks"]["rank"]["passed"] is False and out["checks"]["rank"]["max_rank"] == 5
    elif problem in device_ops.FORM_REJECTIONS:
        assert problem in st.form_violations()
        rule = out["checks"]["forms"]["rejected"][problem]
        assert out["checks"]["forms"]["passed"] is False and rule["nodes"] and rule["reason"] and rule["source"]
    else:
        assert device_ops.classify(problem) == "rejected" and problem in st.rejected
        entry = out["checks"]["ops"]["rejected"][problem]
        assert entry["count"] >= 1 and entry["reason"] and entry["source"]
    assert set(out["checks"]) == {"ops", "forms", "rank", "io"}  # every static check reported, whichever failed


def test_unproven_op_fails_unless_allowed(tmp_path):
    path = tmp_path / "tanh.tflite"
    path.write_bytes(convert_to_tflite(_Tanh().eval(), (16, 16), "fp32"))
    assert device_ops.classify("TANH") == "unproven"
    code, out, _ = _cli_audit(path)
    assert code == 1 and out["checks"]["ops"]["unproven"] == {"TANH": 1} and out["checks"]["ops"]["rejected"] == {}
    code, out, _ = _cli_audit(path, "--allow-unproven")
    assert code == 0 and out["passed"] is True and out["checks"]["ops"]["allow_unproven"] is True


def test_op_tables_are_disjoint_and_sourced():
    assert not set(device_ops.PROVEN) & set(device_ops.REJECTED)
    for op in ("DEPTH_TO_SPACE", "TRANSPOSE_CONV", "SPLIT", "SPLIT_V", "RELU_0_TO_1", "BROADCAST_TO", "GATHER_ND"):
        assert device_ops.classify(op) == "rejected" and device_ops.REJECTED[op].source
    for op, src in device_ops.PROVEN.items():
        assert "Pixel 8a" in src or "PR #" in src, op


@pytest.mark.slow
def test_cli_convert_and_audit_small_model_nhwc(tmp_path, small_checkpoint_file):
    ckpt = small_checkpoint_file
    out = tmp_path / "small_nhwc.tflite"
    cli = [sys.executable, "-m", "nafnet_litert.cli"]
    r = subprocess.run(
        cli + ["convert", str(ckpt), "-o", str(out), "--size", "64x96", "--precision", "fp32", "--nhwc"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "phone-GPU-clean: yes" in r.stdout
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
    m = rep["checks"]["parity_cpu"]["images"][0]["vs_reference"]
    assert rep["passed"] and m["corr"] >= 0.999999 and m["max_abs"] <= 1e-4, m
    assert set(rep["checks"]) == {"ops", "forms", "rank", "io", "parity_cpu"}
    assert rep["checks"]["forms"]["passed"] and rep["checks"]["forms"]["dynamic"]["identical"]


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
    from nafnet_litert.models.checkpoint import save_safetensors

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
