"""fp16 headroom measured on the .tflite file itself (nafnet_litert.verify.headroom).

Oracles are independent of the implementation: accumulator bounds recomputed with explicit numpy loops from the
torch module's own weights; a stressed checkpoint whose straight conversion must overflow at its LayerNorms while
the export does not; fp16-weight and NHWC exports compared with the fp32 NCHW export of the same checkpoint.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nafnet_litert.verify.headroom import (
    ACCUMULATING_OPS,
    FP16_MAX,
    FP16_MIN_NORMAL,
    FP16_MIN_SUBNORMAL,
    measure_headroom,
)
from nafnet_litert.litert.convert import convert_to_tflite, export
from nafnet_litert.litert.graph import read_graph



def _write(tmp_path, name: str, buf: bytes):
    p = tmp_path / name
    p.write_bytes(buf)
    return p


def _rows(report, op: str):
    return [r for r in report.rows if r.op == op]


# --------------------------------------------------------------------------------------------------------------
# (1) bounds against a direct numpy computation


class Tiny(nn.Module):
    """Every accumulating op the module bounds: CONV_2D (SAME, VALID + stride 2), DEPTHWISE_CONV_2D (dilation 2,
    multiplier 2), AVERAGE_POOL_2D, MEAN (channels), SUM (H, W), FULLY_CONNECTED, and a 1x1 conv whose weights
    cancel on an input with equal channels (output 0, accumulator 1e5)."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.c1 = nn.Conv2d(3, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 6, 2, stride=2)
        self.dw = nn.Conv2d(6, 12, 3, padding=2, dilation=2, groups=6)
        self.fc = nn.Linear(12, 5)
        for m in (self.c1, self.c2, self.dw, self.fc):
            m.weight.data = torch.randn(m.weight.shape, generator=g)
            m.bias.data = torch.randn(m.bias.shape, generator=g)
        self.cancel = nn.Conv2d(3, 1, 1, bias=False)
        self.cancel.weight.data = torch.tensor([5e4, -5e4, 0.0]).view(1, 3, 1, 1)

    def stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        a = self.c1(x)
        b = self.c2(a)
        c = self.dw(b)
        p = F.avg_pool2d(c, 2)
        m = p.mean(1, keepdim=True)
        t = c.sum((2, 3))
        f = self.fc(t)
        q = self.cancel(x)
        return dict(x=x, a=a, b=b, c=c, p=p, m=m, t=t, f=f, q=q)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stages(x)
        return s["m"].sum() + s["f"].sum() + s["q"].mean() + 0 * x


def _conv_oracle(x, w, b, stride=1, pad=0, dilation=1, groups=1) -> float:
    """max over (o, i, j) of sum |w| |x| + |b| by explicit loops (x: [C,H,W], w: [O, C/groups, kh, kw])."""
    x = np.pad(np.abs(x.astype(np.float64)), ((0, 0), (pad, pad), (pad, pad)))
    w = np.abs(w.astype(np.float64))
    o_n, cg, kh, kw = w.shape
    ho = (x.shape[1] - dilation * (kh - 1) - 1) // stride + 1
    wo = (x.shape[2] - dilation * (kw - 1) - 1) // stride + 1
    best = 0.0
    for o in range(o_n):
        c0 = (o // (o_n // groups)) * cg
        for i in range(ho):
            for j in range(wo):
                s = 0.0
                for c in range(cg):
                    for u in range(kh):
                        for v in range(kw):
                            s += w[o, c, u, v] * x[c0 + c, i * stride + u * dilation, j * stride + v * dilation]
                best = max(best, s + (abs(float(b[o])) if b is not None else 0.0))
    return best


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    net = Tiny().eval()
    path = _write(tmp_path_factory.mktemp("tiny"), "tiny.tflite", convert_to_tflite(net, (8, 8), "fp32"))
    rng = np.random.default_rng(3)
    x = np.repeat(rng.uniform(0.2, 1.0, (1, 1, 8, 8)).astype(np.float32), 3, axis=1)  # equal channels
    return net, path, x


def test_bounds_equal_numpy_oracle(tiny):
    net, path, x = tiny
    rep = measure_headroom(path, x)
    with torch.no_grad():
        s = {k: v[0].numpy() if v.ndim == 4 else v.numpy() for k, v in net.stages(torch.from_numpy(x)).items()}
    convs = _rows(rep, "CONV_2D")
    w = {n: getattr(net, n).weight.detach().numpy() for n in ("c1", "c2", "dw", "cancel")}
    bias = {n: getattr(net, n).bias.detach().numpy() for n in ("c1", "c2", "dw")}
    expected_convs = {
        "c1": _conv_oracle(s["x"], w["c1"], bias["c1"], pad=1),
        "c2": _conv_oracle(s["a"], w["c2"], bias["c2"], stride=2),
        "cancel": _conv_oracle(s["x"], w["cancel"], None),
    }
    got = sorted(r.bound for r in convs)
    assert len(convs) == 3
    np.testing.assert_allclose(got, sorted(expected_convs.values()), rtol=1e-5)
    (dw,) = _rows(rep, "DEPTHWISE_CONV_2D")
    dw_oracle = _conv_oracle(s["b"], w["dw"], bias["dw"], pad=2, dilation=2, groups=6)
    np.testing.assert_allclose(dw.bound, dw_oracle, rtol=1e-5)
    (pool,) = _rows(rep, "AVERAGE_POOL_2D")
    c = np.abs(s["c"].astype(np.float64))
    pool_oracle = max(c[:, i : i + 2, j : j + 2].sum(axis=(1, 2)).max() for i in (0, 2) for j in (0, 2))
    np.testing.assert_allclose(pool.bound, pool_oracle, rtol=1e-5)
    (mean,) = [r for r in _rows(rep, "MEAN") if int(np.prod(r.shape)) == 4]  # over the channels of p: 2x2 left
    np.testing.assert_allclose(mean.bound, np.abs(s["p"].astype(np.float64)).sum(axis=0).max(), rtol=1e-5)
    sum_hw = [r for r in _rows(rep, "SUM") if r.shape == (1, 12)]
    assert len(sum_hw) == 1
    np.testing.assert_allclose(sum_hw[0].bound, c.sum(axis=(1, 2)).max(), rtol=1e-5)
    (fc,) = _rows(rep, "FULLY_CONNECTED")
    fw, fb = net.fc.weight.detach().numpy().astype(np.float64), net.fc.bias.detach().numpy().astype(np.float64)
    fc_oracle = max(float(np.abs(fw[o]) @ np.abs(s["t"][0]) + abs(fb[o])) for o in range(5))
    np.testing.assert_allclose(fc.bound, fc_oracle, rtol=1e-5)
    # max |output| is the fp32 activation the torch module computes
    c1_row = next(r for r in convs if math.isclose(r.bound, expected_convs["c1"], rel_tol=1e-5))
    np.testing.assert_allclose(c1_row.max_abs, np.abs(s["a"]).max(), rtol=1e-5)


def test_cancelling_weights_overflow_the_accumulator_not_the_output(tiny):
    _net, path, x = tiny
    rep = measure_headroom(path, x)
    row = max(_rows(rep, "CONV_2D"), key=lambda r: r.bound)
    assert row.max_abs < 1e-2  # 5e4 * v - 5e4 * v
    np.testing.assert_allclose(row.bound, 1e5 * x[0, 0].max(), rtol=1e-6)
    assert row.verdict == "overflow" and row.limited_by == "accumulator"
    np.testing.assert_allclose(row.headroom, FP16_MAX / row.bound)
    assert rep.worst is row and rep.overflow_count == 1 and not rep.passed
    assert row.finite and rep.nonfinite_count == 0


def test_every_bound_covers_the_output(tiny, small_models):
    """|sum w x + b| <= sum |w||x| + |b| and |mean| <= sum |x|: a bound below max|out| is a bug."""
    reports = [measure_headroom(tiny[1], tiny[2])]
    x = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    reports += [measure_headroom(p, x) for p in small_models.values()]
    n = 0
    for rep in reports:
        for r in rep.rows:
            if r.op in ACCUMULATING_OPS:
                assert r.bound is not None, (rep.model, r.index, r.op, rep.notes)
                assert r.bound >= r.max_abs * (1 - 1e-5), (rep.model, r.index, r.op)
                n += 1
            else:
                assert r.bound is None
    assert n > 100


# --------------------------------------------------------------------------------------------------------------
# floors, non-finite values, report plumbing


class Floors(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = torch.rsqrt(F.relu(x - 2.0))  # rsqrt(0) = inf already in fp32
        d = x / torch.sqrt(x * 1e-12)  # SQRT of ~1e-12 (< 2^-24) feeds a denominator
        s = torch.sqrt(x * 3e-13) + 1.0  # SQRT of ~3e-13, not a denominator: 0 in fp16, harmless
        return r.mean() + d + s


def test_floors_and_nonfinite(tmp_path):
    path = _write(tmp_path, "floors.tflite", convert_to_tflite(Floors().eval(), (8, 8), "fp32"))
    x = np.random.default_rng(1).uniform(0.1, 1.0, (1, 3, 8, 8)).astype(np.float32)
    rep = measure_headroom(path, x)
    (rsqrt,) = _rows(rep, "RSQRT")
    assert rsqrt.floor == 0.0 and rsqrt.floor_verdict == "underflow" and rsqrt.inf and not rsqrt.finite
    sqrts = sorted(_rows(rep, "SQRT"), key=lambda r: r.floor)
    assert len(sqrts) == 2
    np.testing.assert_allclose([r.floor for r in sqrts], [3e-13 * x.min(), 1e-12 * x.min()], rtol=1e-4)
    assert [r.floor_verdict for r in sqrts] == ["subnormal", "underflow"]  # only the denominator one becomes inf
    (div,) = _rows(rep, "DIV")
    np.testing.assert_allclose(div.floor, math.sqrt(1e-12 * x.min()), rtol=1e-4)  # 3e-7: subnormal in fp16
    assert FP16_MIN_SUBNORMAL < div.floor < FP16_MIN_NORMAL and div.floor_verdict == "subnormal"
    assert rep.underflow_count == 2 and rep.nonfinite_count >= 2 and not rep.passed
    d = rep.to_dict()
    json.dumps(d)  # serialisable (inf as Infinity)
    assert d["passed"] is False and d["underflow_count"] == 2 and len(d["rows"]) == len(rep.rows)
    assert d["worst_floor"]["op"] == "RSQRT"
    table = rep.format_table(top=5)
    assert "RSQRT" in table and "underflow" in table and "FAIL" in table


def test_input_shape_is_checked(tiny):
    with pytest.raises(ValueError, match="NCHW"):
        measure_headroom(tiny[1], np.zeros((1, 8, 8, 3), np.float32))


# --------------------------------------------------------------------------------------------------------------
# (3) fp16 weights and (4) NHWC, against the fp32 NCHW export of the same checkpoint


@pytest.fixture(scope="module")
def small_models(tmp_path_factory, small_checkpoint, small_exports):
    out = {(p, "NCHW"): small_exports[p].model_path for p in ("fp32", "fp16")}
    p = tmp_path_factory.mktemp("small") / "small_fp32_NHWC.tflite"
    export(small_checkpoint, p, size=(64, 64), precision="fp32", layout="NHWC")
    out[("fp32", "NHWC")] = p
    return out


def _accumulators(rep) -> list[tuple[str, float]]:
    return [(r.op, r.bound) for r in rep.rows if r.bound is not None]


@pytest.fixture(scope="module")
def small_input():
    return np.random.default_rng(7).random((1, 3, 64, 64), dtype=np.float32)


def test_fp16_weight_export_reads_dequantized_weights(small_models, small_input):
    path = small_models[("fp16", "NCHW")]
    rep = measure_headroom(path, small_input)
    base = measure_headroom(small_models[("fp32", "NCHW")], small_input)
    assert _rows(rep, "DEQUANTIZE")
    weighted = [r for r in rep.rows if r.op in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    assert weighted and all(r.weights == "interpreter" for r in weighted)
    a, b = _accumulators(rep), _accumulators(base)
    assert [op for op, _ in a] == [op for op, _ in b]
    np.testing.assert_allclose([v for _, v in a], [v for _, v in b], rtol=2e-2)  # weights rounded to fp16
    assert rep.passed == base.passed and rep.overflow_count == base.overflow_count == 0
    # the DEQUANTIZE outputs the interpreter preserved are the file's float16 constants, widened exactly
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    graph = read_graph(path)
    it = Interpreter(
        model_path=str(path),
        experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    it.allocate_tensors()
    it.set_tensor(graph.inputs[0], small_input)
    it.invoke()
    dq = [op for op in graph.ops if op.name == "DEQUANTIZE"]
    for op in dq:
        assert graph.tensors[op.inputs[0]].dtype == "FLOAT16"
        const = graph.const_value(op.inputs[0])  # the file's float16 constant, as the headroom check reads it
        np.testing.assert_array_equal(it.get_tensor(op.outputs[0]), const.astype(np.float32))


def test_fp16_weights_fall_back_to_the_constant_buffer(small_models, small_input, monkeypatch):
    """If the interpreter cannot give a DEQUANTIZE output, the float16 constant is read from the file instead."""
    from ai_edge_litert import interpreter as litert_interpreter

    path = small_models[("fp16", "NCHW")]
    expected = measure_headroom(path, small_input)
    graph = read_graph(path)
    hidden = {op.outputs[0] for op in graph.ops if op.name == "DEQUANTIZE"}
    real_get = litert_interpreter.Interpreter.get_tensor

    def get_tensor(self, index, *args, **kwargs):
        if index in hidden:
            raise ValueError("tensor not readable")
        return real_get(self, index, *args, **kwargs)

    monkeypatch.setattr(litert_interpreter.Interpreter, "get_tensor", get_tensor)
    rep = measure_headroom(path, small_input)
    weighted = [r for r in rep.rows if r.op in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    assert weighted and all(r.weights == "constant" for r in weighted)
    np.testing.assert_allclose(
        [v for _, v in _accumulators(rep)], [v for _, v in _accumulators(expected)], rtol=1e-12
    )


def test_nhwc_export_matches_nchw(small_models, small_input):
    nhwc = measure_headroom(small_models[("fp32", "NHWC")], small_input)
    nchw = measure_headroom(small_models[("fp32", "NCHW")], small_input)
    assert nhwc.input_layout == "NHWC" and nchw.input_layout == "NCHW"
    a, b = _accumulators(nhwc), _accumulators(nchw)
    assert [op for op, _ in a] == [op for op, _ in b] and len(a) > 20
    np.testing.assert_allclose([v for _, v in a], [v for _, v in b], rtol=1e-4)
    np.testing.assert_allclose(nhwc.worst.headroom, nchw.worst.headroom, rtol=1e-4)
    assert nhwc.nonfinite_count == 0 and nhwc.overflow_count == 0


# --------------------------------------------------------------------------------------------------------------
# (2) a stressed checkpoint: the straight conversion overflows at its LayerNorms, the export does not


@pytest.mark.slow
def test_stressed_straight_conversion_overflows_export_does_not(tmp_path):
    from nafnet_litert.models.checkpoint import checkpoint_from_model, random_checkpoint
    from nafnet_litert.models.config import NAFNetConfig
    from nafnet_litert.models.stress import default_photo, stressed_twin

    # 3 levels of width 32: a 256-channel bottleneck, where sum_c (x - mu)^2 of a |x| ~ 175 stream passes 65504
    config = NAFNetConfig(width=32, enc_blocks=(1, 1, 1), middle_blocks=1, dec_blocks=(1, 1, 1))
    x = default_photo(64)
    twin, _k, devs = stressed_twin(random_checkpoint(config, seed=0).build_reference(), 175.0, x)
    assert devs == pytest.approx([175.0] * 4, rel=1e-3)
    ckpt = checkpoint_from_model(twin)
    straight = _write(tmp_path, "straight.tflite", convert_to_tflite(ckpt.build_reference(), (64, 64), "fp32"))
    exported = tmp_path / "exported.tflite"
    export(ckpt, exported, size=(64, 64), precision="fp32")

    s = measure_headroom(straight, x.numpy())
    assert not s.passed and s.overflow_count > 0
    assert s.worst.op in ("MEAN", "CONV_2D") and re.search(r"/norm[12]\b", s.worst.output), s.worst.output  # a LayerNorm
    assert s.worst.limited_by == "accumulator" and s.worst.headroom < 1
    assert s.nonfinite_count == 0  # fp32 itself is fine: the overflow is an fp16 one

    e = measure_headroom(exported, x.numpy())
    assert e.passed, e.format_table(10)
    assert e.overflow_count == 0 and e.underflow_count == 0 and e.nonfinite_count == 0
