"""fp16 on mobile GPUs: the stress checkpoint, the headroom analysis, the fp16 emulator and the evidence PNG.

Findings these tests pin down (see nafnet_litert.fp16):

* Under a residual stream of |x| ~ 175 (trained GoPro-w32's bottleneck) the reference LayerNorm's variance sum
  overflows fp16, and the fp16-emulated reference output is ruined; the deploy LayerNorm's sums stay far below
  65504.
* The reference's full-frame pooling (one MEAN over H*W) can exceed 65504 and, accumulated sequentially, loses
  most of its precision; the separable pooling does not.
* A LayerNorm scale S = 128 pushes small activations' variance (x/S)^2 below fp16's smallest subnormal: a pixel
  whose channels spread by less than ~0.02 divides 0 by 0 and NaN spreads everywhere (through the
  channel-attention pooling). That is why the default is S = 32, which holds both ends.
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from nafnet_litert.audit import parity_metrics
from nafnet_litert.checkpoint import random_checkpoint
from nafnet_litert.fp16 import (
    PANEL_LABEL_HEIGHT,
    bottleneck_magnitude,
    emulate_fp16,
    format_table,
    fp16_evidence,
    fp16_headroom,
    photo_tensor,
    stress_checkpoint,
    summarize,
)
from nafnet_litert.fp16_emulate import (
    Fp16LayerNorm,
    Fp16ScaledLayerNorm,
    round_fp16,
    seq_mean_fp16,
    seq_sum_fp16,
    to_fp16_twin,
)
from nafnet_litert.model import PRESETS
from nafnet_litert.model.deploy import ScaledLayerNorm2d, to_deploy
from nafnet_litert.model.reference import LayerNorm2d

from .conftest import skimage_photo

#: A deploy scale that holds in fp16 at both ends (the stress bottleneck and small shallow activations).
SAFE_SCALE = 32.0


def _broken(m: dict) -> bool:
    """An fp16 output is 'broken' when it is non-finite, or decorrelated with a PSNR below 10 dB."""
    return (not m["finite"]) or (m["corr"] < 0.9 and m["psnr"] < 10)


# ---------------------------------------------------------------------------------------------- accumulator


def test_sequential_fp16_sum_overflows_where_float32_does_not():
    v = torch.full((1, 600, 1, 1), 120.0)
    assert v.sum().item() == 72000.0  # fine in float32
    assert torch.isinf(seq_sum_fp16(v, [1])).all()
    assert torch.isinf(seq_mean_fp16(v, [1])).all()  # the mean is taken after the (overflowed) sum


def test_sequential_fp16_sum_matches_float32_for_small_values():
    v = torch.randn(2, 64, 5, 7) * 0.5
    for dims in ([1], [3], [2, 3]):
        ref = v.sum(dims, keepdim=True)
        out = seq_sum_fp16(v, dims)
        assert out.shape == ref.shape
        torch.testing.assert_close(out, ref, rtol=0, atol=0.05)
        assert torch.equal(round_fp16(out), out)  # holds fp16 values
    torch.testing.assert_close(seq_mean_fp16(v, [2, 3]), v.mean((2, 3), keepdim=True), rtol=0, atol=2e-3)


def test_fp16_special_values_propagate():
    assert torch.isinf(round_fp16(torch.tensor(70000.0)))
    assert round_fp16(torch.tensor(65519.0)).item() == 65504.0
    v = torch.tensor([60000.0, 60000.0, -60000.0]).view(1, 3, 1, 1)
    assert torch.isinf(seq_sum_fp16(v, [1])).all()  # 120000 -> inf, and inf - 60000 stays inf (true sum: 60000)
    w = torch.tensor([60000.0, 60000.0, -70000.0]).view(1, 3, 1, 1)
    assert torch.isnan(seq_sum_fp16(w, [1])).all()  # +inf, then -70000 (itself -inf in fp16): NaN


# ---------------------------------------------------------------------------------------------- LayerNorm units


def test_fp16_reference_layernorm_overflows_and_scaled_layernorm_holds():
    ln = LayerNorm2d(512)
    ln.weight.data.normal_(1, 0.2)
    ln.bias.data.normal_(0, 0.1)
    x = torch.randn(1, 512, 4, 4)
    x = x / x.abs().amax() * 175
    with torch.no_grad():
        ref = ln(x)
        naive = Fp16LayerNorm(ln)(x)
        scaled = Fp16ScaledLayerNorm(ScaledLayerNorm2d.from_reference(ln))(x)
    # sum_c (x - mu)^2 ~ 1e6 -> inf; x / inf = 0: every pixel collapses to the bias (finite, and wrong)
    assert torch.equal(naive, round_fp16(ln.bias.detach()).view(1, -1, 1, 1).expand_as(naive))
    assert (scaled - ref).abs().max() < 0.05


def test_default_scale_underflows_on_small_channel_spread():
    """(x/128)^2 of a channel spread ~0.02 is below fp16's smallest subnormal: var = 0, eps/S^2 = 0, 0/0."""
    ln = LayerNorm2d(32)
    ln.weight.data.normal_(1, 0.2)
    ln.bias.data.normal_(0, 0.1)
    x = 0.3 + 0.02 * torch.randn(1, 32, 8, 8)
    with torch.no_grad():
        ref = ln(x)
        s128 = Fp16ScaledLayerNorm(ScaledLayerNorm2d.from_reference(ln, 128.0))(x)
        s16 = Fp16ScaledLayerNorm(ScaledLayerNorm2d.from_reference(ln, 16.0))(x)
    assert not torch.isfinite(s128).all()
    assert torch.isfinite(s16).all() and (s16 - ref).abs().max() < 0.1


# ---------------------------------------------------------------------------------------------- tiny networks


def test_emulator_tracks_fp32_on_a_tiny_network(small_checkpoint):
    """Sanity: with small activations and a small frame, the emulated networks follow fp32 closely."""
    ref = small_checkpoint.build_reference()
    x = photo_tensor(None, 64)
    with torch.no_grad():
        y = ref(x)
    before = {k: v.clone() for k, v in ref.state_dict().items()}
    for net in (ref, to_deploy(ref, SAFE_SCALE)):
        m = parity_metrics(emulate_fp16(net, x).numpy(), y.numpy())
        assert m["finite"] and m["corr"] >= 0.999, m
    assert all(torch.equal(before[k], v) for k, v in ref.state_dict().items())  # the input model is untouched
    assert to_fp16_twin(ref) is not None


def test_headroom_report_on_a_tiny_network(small_checkpoint):
    ref = small_checkpoint.build_reference()
    x = photo_tensor(None, 64)
    reports = fp16_headroom(ref, x)
    kinds = {(r.kind, r.quantity) for r in reports}
    assert {("layernorm", "sum_mean"), ("layernorm", "sum_var"), ("avgpool", "sum_pool")} <= kinds
    assert ("layernorm", "var_floor") in kinds and ("conv", "output") in kinds and ("network", "output") in kinds
    assert any(r.name == "encoders.0.0.sg#2" for r in reports)  # the shared gate's second call
    s = summarize(reports)
    assert s["overflow_count"] == 0 and s["verdict"] in ("ok", "tight")
    text = format_table(reports, top=5)
    assert "worst headroom" in text and len(text.splitlines()) >= 7
    dep = summarize(fp16_headroom(to_deploy(ref), x))
    assert {"scaled_layernorm", "separable_mean"} <= set(dep["per_kind"])


def test_headroom_predicts_the_scale_128_underflow(small_checkpoint):
    """At 128 x 128 a pixel's channel spread is small enough that S = 128 underflows; the floor flags exactly
    that, and the emulated deploy output is NaN, while the default S = 32 holds."""
    ref = small_checkpoint.build_reference()
    x = photo_tensor(None, 128)
    with torch.no_grad():
        y = ref(x)
    s128 = to_deploy(ref, 128.0)
    assert summarize(fp16_headroom(s128, x))["underflow_count"] >= 1
    assert not torch.isfinite(emulate_fp16(s128, x)).all()
    safe = to_deploy(ref)
    assert summarize(fp16_headroom(safe, x))["underflow_count"] == 0
    m = parity_metrics(emulate_fp16(safe, x).numpy(), y.numpy())
    assert m["finite"] and m["corr"] >= 0.999


# ---------------------------------------------------------------------------------------------- GoPro-w32


@pytest.fixture(scope="module")
def stress():
    """Stress GoPro-w32 (bottleneck |x| ~ 175) on chelsea's centre 256 x 256, with its fp32 output."""
    ckpt = stress_checkpoint()
    x = photo_tensor(None, 256)
    ref = ckpt.build_reference()
    with torch.no_grad():
        y = ref(x)
    return ckpt, x, ref, y


@pytest.mark.slow
def test_stress_checkpoint_reaches_the_trained_magnitude_with_the_same_function(stress):
    ckpt, x, ref, y = stress
    assert 150 <= bottleneck_magnitude(ref, x) <= 200
    base = random_checkpoint(PRESETS["GoPro-width32"], seed=0).build_reference()
    assert bottleneck_magnitude(base, x) < 10
    with torch.no_grad():
        y0 = base(x)
    assert (y - y0).abs().max() < 1e-3  # a gauge transform: the fp32 network computes the same function


@pytest.mark.slow
def test_headroom_flags_reference_layernorm_and_passes_deploy_under_stress(stress):
    _, x, ref, _ = stress
    naive = summarize(fp16_headroom(ref, x))
    assert naive["per_reduction"]["layernorm:sum_var"]["verdict"] == "overflow"
    assert naive["per_reduction"]["layernorm:sum_var"]["headroom"] < 0.2
    assert any(name.startswith("middle_blks.0.norm") for name in naive["overflow_layers"])
    for scale in (None, SAFE_SCALE):
        dep = to_deploy(ref) if scale is None else to_deploy(ref, scale)
        s = summarize(fp16_headroom(dep, x))
        for key in ("scaled_layernorm:sum_mean", "scaled_layernorm:sum_var", "separable_mean:sum_pool_w",
                    "separable_mean:sum_pool_h"):  # fmt: skip
            assert s["per_reduction"][key]["headroom"] >= 1, (scale, key, s["per_reduction"][key])
        assert s["overflow_count"] == 0


@pytest.mark.slow
def test_headroom_with_ordinary_random_weights(stress):
    """Small activations: every LayerNorm passes, reference and deploy; the reference's one-shot full-frame
    pooling is the only reduction over the limit (the hazard rewrite (b) removes)."""
    _, x, _, _ = stress
    ref = random_checkpoint(PRESETS["GoPro-width32"], seed=0).build_reference()
    naive = summarize(fp16_headroom(ref, x))
    for key in ("layernorm:sum_mean", "layernorm:sum_var"):
        assert naive["per_reduction"][key]["headroom"] >= 1
    assert naive["per_reduction"]["avgpool:sum_pool"]["verdict"] == "overflow"
    assert naive["overflow_layers"] and all(".sca." in name for name in naive["overflow_layers"])
    dep = summarize(fp16_headroom(to_deploy(ref, SAFE_SCALE), x))
    assert dep["overflow_count"] == 0 and dep["underflow_count"] == 0
    assert dep["worst_reduction"]["headroom"] >= 2


@pytest.mark.slow
def test_emulated_reference_breaks_and_deploy_holds_under_stress(stress):
    _, x, ref, y = stress
    naive = parity_metrics(emulate_fp16(ref, x).numpy(), y.numpy())
    assert _broken(naive), naive
    deploy = parity_metrics(emulate_fp16(to_deploy(ref, SAFE_SCALE), x).numpy(), y.numpy())
    assert deploy["finite"] and deploy["corr"] >= 0.999, deploy


@pytest.mark.slow
def test_fp16_evidence_png_and_metrics(stress, tmp_path):
    ckpt = stress[0]
    out = tmp_path / "fp16_evidence.png"
    m = fp16_evidence(ckpt, skimage_photo("chelsea.png"), out, deploy_scale=SAFE_SCALE)
    with Image.open(out) as im:
        assert im.size == (5 * 256, 256 + PANEL_LABEL_HEIGHT)
    assert m["png"] == str(out) and m["image"] == "chelsea.png"
    assert 150 <= m["bottleneck_max_abs"] <= 200
    assert _broken(m["reference_fp16"]), m["reference_fp16"]
    assert m["deploy_fp16"]["finite"] and m["deploy_fp16"]["corr"] >= 0.999, m["deploy_fp16"]
    assert m["headroom"]["reference"]["overflow_count"] > 0 and m["headroom"]["deploy"]["overflow_count"] == 0
