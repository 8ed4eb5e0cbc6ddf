"""Each deploy rewrite against the module it replaces, and the whole deploy model against the reference."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nafnet_litert.models.checkpoint import random_checkpoint
from nafnet_litert.restore.pixels import to_nchw
from nafnet_litert.models import PRESETS
from nafnet_litert.models.deploy import ScaledLayerNorm2d, SeparableGlobalMean, ZeroStuffUpsample, to_deploy
from nafnet_litert.models.reference import LayerNorm2d, Upsample

from tests.conftest import SMALL, photo_array


@pytest.mark.parametrize("magnitude", [1.0, 175.0, 3000.0])
def test_scaled_layernorm_matches_the_reference_to_rounding(magnitude):
    ln = LayerNorm2d(64)
    ln.weight.data.normal_(1, 0.3)
    ln.bias.data.normal_(0, 0.3)
    x = torch.randn(2, 64, 9, 13) * magnitude + magnitude / 3
    new = ScaledLayerNorm2d.from_reference(ln)
    with torch.no_grad():
        a, b = new(x), ln(x)
    # power-of-two scaling commutes with every rounding; rsqrt vs 1/sqrt differs by at most an ulp or two
    assert (a - b).abs().max().item() <= 4e-7 * b.abs().max().item()


def _reduction_sums(module: nn.Module, x: torch.Tensor) -> list[float]:
    """The largest running sum every channel reduction inside ``module``'s forward accumulates (what an fp16
    accumulator must hold): each ``mean`` over dim 1 is watched, its input's |values| summed over channels."""
    from torch.overrides import TorchFunctionMode

    sums: list[float] = []

    class Watch(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if getattr(func, "__name__", "") == "mean" and (args[1:2] == (1,) or kwargs.get("dim") == 1):
                sums.append(float(args[0].detach().double().abs().sum(1).max()))
            return func(*args, **kwargs)

    with Watch():
        module(x)
    return sums


def test_scaled_layernorm_statistics_stay_small():
    """At |x| = 175 over 512 channels, every reduction of the deploy LayerNorm (S = 128) sums far below fp16's 65504,
    where the reference LayerNorm's variance sum is ~15M; the outputs agree."""
    from nafnet_litert.models.deploy.layernorm import ScaledLayerNorm2d
    from nafnet_litert.models.reference import LayerNorm2d

    torch.manual_seed(0)
    x = torch.randn(1, 512, 4, 4)
    x = x / x.abs().amax() * 175
    ref = LayerNorm2d(512)
    new = ScaledLayerNorm2d.from_reference(ref, scale=128.0)
    ref_sums, new_sums = _reduction_sums(ref, x), _reduction_sums(new, x)
    assert len(ref_sums) == len(new_sums) == 2  # the mean and the variance
    assert max(ref_sums) > 65504 * 10
    assert max(new_sums) < 1000
    torch.testing.assert_close(new(x), ref(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scale", [1.0, 128.0])
def test_separable_mean_matches_global_pool(scale):
    x = torch.randn(2, 16, 24, 40) * 50
    ref = nn.AdaptiveAvgPool2d(1)(x)
    new = SeparableGlobalMean(scale)(x)
    assert new.shape == ref.shape
    torch.testing.assert_close(new, ref, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("hw", [(4, 4), (5, 7), (16, 48)])
@pytest.mark.parametrize("form", ["zero_stuff", "depth_to_space"])
def test_upsample_rewrites_equal_pixelshuffle(hw, form):
    from nafnet_litert.models.deploy.lean import LeanUpsample

    up = Upsample(24)
    up.conv.weight.data.normal_()
    new = {
        "zero_stuff": ZeroStuffUpsample.from_reference,
        "depth_to_space": lambda u: LeanUpsample(ZeroStuffUpsample.from_reference(u)),
    }[form](up)
    x = torch.randn(1, 24, *hw)
    with torch.no_grad():
        a, b = up(x), new(x)
    assert a.shape == b.shape == (1, 12, 2 * hw[0], 2 * hw[1])
    if form == "depth_to_space":  # the same rows, only reordered
        assert torch.equal(a, b)
    else:  # each value is the same 24 products plus zeros, summed in the 2x2 convolution's order
        ulp = torch.finfo(torch.float32).eps * a.abs().max()
        assert (a - b).abs().max() <= 4 * ulp


def test_zero_stuff_reads_the_resize_only_on_its_grid():
    """Perturb every off-grid value of the resized tensor: the upsampler's output must not move at all."""
    import torch.nn.functional as F

    up = Upsample(8)
    up.conv.weight.data.normal_()
    z = ZeroStuffUpsample.from_reference(up)
    x = torch.randn(1, 8, 6, 10)
    real = F.interpolate
    noise = torch.randn(1, 8, 12, 20)
    off = torch.ones(1, 1, 12, 20)
    off[..., ::2, ::2] = 0

    def lying_resize(t, *args, **kwargs):  # what a Mali-style resize might return off the grid
        return real(t, *args, **kwargs) + noise * off

    with torch.no_grad():
        clean = z(x)
        F.interpolate = lying_resize
        try:
            lied = z(x)
        finally:
            F.interpolate = real
    assert torch.equal(clean, lied)
    assert not torch.equal(real(x, size=(12, 20), mode="nearest") + noise * off, real(x, size=(12, 20), mode="nearest"))


def test_native_ops_match_their_torch_definitions():
    from nafnet_litert.models.deploy.native_ops import channel_halves, depth_to_space, depth_to_space_nhwc

    x = torch.randn(2, 12, 3, 5)
    a, b = channel_halves(x, 1)
    assert torch.equal(a, x[:, :6]) and torch.equal(b, x[:, 6:])
    with pytest.raises(ValueError, match="even"):
        channel_halves(x, 3)  # TFLite's SPLIT cannot split 5 in halves
    # TFLite's definition, element by element: out[h*r+i, w*r+j, c] = in[h, w, (i*r+j)*C + c] (NHWC)
    r, c = 2, 3
    nhwc = x.permute(0, 2, 3, 1)
    out = depth_to_space_nhwc(nhwc, r)
    for h, w, i, j, k in [(0, 0, 0, 0, 0), (2, 4, 1, 1, 2), (1, 3, 0, 1, 1), (2, 0, 1, 0, 0)]:
        assert out[1, h * r + i, w * r + j, k] == nhwc[1, h, w, (i * r + j) * c + k]
    assert torch.equal(depth_to_space(x, r), out.permute(0, 3, 1, 2))


def test_to_deploy_leaves_input_untouched_and_replaces_everything():
    ref = random_checkpoint(SMALL).build_reference()
    dep = to_deploy(ref)
    assert not any(isinstance(m, (LayerNorm2d, Upsample, nn.PixelShuffle)) for m in dep.modules())
    assert any(isinstance(m, LayerNorm2d) for m in ref.modules())


@pytest.mark.parametrize(
    "config, photo, size",
    [(SMALL, "astronaut.png", (128, 192)), (PRESETS["GoPro-width32"], "chelsea.png", (256, 256))],
)
def test_deploy_matches_reference_on_real_photos(config, photo, size):
    # beta/gamma ~ N(0, 0.1): live blocks, outputs of a realistic magnitude (|y| < 10)
    ck = random_checkpoint(config, seed=2, scale=0.1)
    ref = ck.build_reference()
    dep = to_deploy(ref)
    x = torch.from_numpy(to_nchw(photo_array(photo, size)))
    with torch.no_grad():
        a, b = ref(x), dep(x)
    diff = (a - b).abs().max().item()
    assert diff <= 1e-5, f"deploy vs reference max abs {diff:.3g}"
    assert (a - x).abs().mean().item() > 1e-3


@pytest.mark.parametrize(
    "native_ops, scale",
    [(False, 32.0), (False, (1.0, 2.0, 8.0, 4.0, 16.0)), (True, (1.0, 2.0, 8.0, 4.0, 16.0)), (False, "auto")],
    ids=["proven-ops-32", "proven-ops-per-level", "native-ops-per-level", "auto"],
)
@pytest.mark.parametrize("config", [SMALL, PRESETS["GoPro-width32"]], ids=["small", "gopro-w32"])
def test_lean_graph_matches_reference_on_real_photos(config, native_ops, scale):
    from nafnet_litert.models.deploy.lean import to_lean

    ck = random_checkpoint(config, seed=4, scale=0.1)
    ref = ck.build_reference()
    lean = to_lean(to_deploy(ref, scale), native_ops=native_ops)
    x = torch.from_numpy(to_nchw(photo_array("coffee.png", (128, 192), offset=(50, 100))))
    with torch.no_grad():
        diff = (ref(x) - lean(x)).abs().max().item()
    assert diff <= 1e-5, f"lean vs reference max abs {diff:.3g}"
