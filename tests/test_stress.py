"""The stressed twin: the same function with a residual stream k times larger, calibrated to trained magnitudes."""

from __future__ import annotations

import copy

import pytest
import torch

from nafnet_litert.models.checkpoint import resolve_checkpoint
from nafnet_litert.errors import CheckpointError
from nafnet_litert.verify.stressed_export import export_options
from nafnet_litert.models.stress import bottleneck_magnitude, default_photo, level_deviations, level_magnitudes, stream_twin, stressed_twin



def _without_eps(net):
    net = copy.deepcopy(net)
    for m in net.modules():
        if hasattr(m, "eps"):
            m.eps = 0.0
    return net


def _streams(net, x):
    """Every block's output (the residual stream) with its level, in execution order."""
    from nafnet_litert.models.tlc import block_levels

    outs = []
    hooks = [
        b.register_forward_hook(lambda m, i, o, lvl=lvl: outs.append((lvl, o.detach()))) for lvl, b in block_levels(net)
    ]
    with torch.no_grad():
        y = net(x)
    for h in hooks:
        h.remove()
    return y, outs


@pytest.mark.parametrize("k", [2.0, 37.5, [3.0, 0.5, 40.0, 7.0, 100.0]], ids=["2", "37.5", "per-level"])
def test_stream_twin_scales_every_stream_and_keeps_the_function(small_checkpoint, k):
    ref = _without_eps(small_checkpoint.build_reference())  # eps is the one term the gauge does not scale
    twin = stream_twin(ref, k)
    x = default_photo(64)
    y, streams = _streams(ref, x)
    y2, streams2 = _streams(twin, x)
    assert (y - y2).abs().max().item() <= 1e-5 * max(1.0, y.abs().max().item())
    ks = [k] * 5 if isinstance(k, float) else k
    assert len(streams) == len(streams2) == 10  # SMALL: 5 encoder, 1 middle, 4 decoder blocks
    for (lvl, a), (lvl2, b) in zip(streams, streams2):  # every block output is exactly k_l times larger
        assert lvl == lvl2
        assert torch.allclose(b, a * ks[lvl], rtol=1e-4, atol=1e-5 * ks[lvl])


def test_stressed_twin_reaches_the_target_at_every_level(small_checkpoint):
    ref = small_checkpoint.build_reference()
    x = default_photo()
    base = level_deviations(ref, x)
    twin, k, devs = stressed_twin(ref, target=175.0, x=x)
    assert devs == pytest.approx([175.0] * len(base), rel=1e-3)
    assert k == pytest.approx([175.0 / b for b in base], rel=1e-2)
    assert level_deviations(twin, x) == pytest.approx(devs, rel=1e-6)
    # the stream's peaks are larger than its largest channel deviation, at every level
    assert all(m >= 175.0 for m in level_magnitudes(twin, x))
    assert bottleneck_magnitude(twin, x) >= 175.0
    with pytest.raises(ValueError):
        stressed_twin(ref, target=0)


def test_stress_spec_resolves_any_checkpoint():
    ck = resolve_checkpoint("stress:random:GoPro-width32@3")
    base = resolve_checkpoint("random:GoPro-width32@3")
    assert ck.config == base.config
    assert level_deviations(ck.build_reference(), default_photo()) == pytest.approx([175.0] * 5, rel=1e-3)
    with pytest.raises(CheckpointError, match="needs a checkpoint"):
        resolve_checkpoint("stress:")
    with pytest.raises(CheckpointError, match="unknown preset"):
        resolve_checkpoint("stress:random:NoSuchNet")


def test_export_options_round_trip_the_sidecar(tmp_path, small_checkpoint):
    from nafnet_litert.litert.convert import export

    res = export(small_checkpoint, tmp_path / "m.tflite", (64, 96), "fp32", layout="NHWC", scale=16.0)
    opts = export_options(res.sidecar)
    assert opts == {
        "size": (64, 96), "precision": "fp32", "layout": "NHWC", "scale": [16.0] * 5, "lean": True, "native_ops": False,
        "straight": False, "tlc": False, "tlc_train_size": 256,
    }  # fmt: skip
    assert export_options({**res.sidecar, "rewrites": {**res.sidecar["rewrites"], "scale_mode": "auto"}})["scale"] == "auto"
    assert export_options({"format": "something-else/1"}) is None
    assert export_options({"format": "nafnet-litert/1"}) is None  # no size: not ours to reproduce
