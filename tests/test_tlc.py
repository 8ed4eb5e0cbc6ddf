"""TLC (megvii NAFNetLocal): the reference pool against the definition, the deploy box mean against the reference,
the whole network in PyTorch and in LiteRT, and the export wiring."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nafnet_litert.litert.static_audit import static_audit
from nafnet_litert.models.checkpoint import random_checkpoint
from nafnet_litert.restore.pixels import to_nchw
from nafnet_litert.models import PRESETS
from nafnet_litert.models.deploy import SeparableGlobalMean, to_deploy
from nafnet_litert.models.deploy.tlc_pool import TLCBoxMean, to_tlc_deploy
from nafnet_litert.models.reference import GlobalAvgPool
from nafnet_litert.models.tlc import TLCPool, block_levels, tlc_kernels, to_tlc

from tests.conftest import SMALL, photo_array

#: (photo, map size, kernel): local on both axes, global, one axis clamped (each way), odd and
#: non-power-of-two sizes and kernels, and the real level-0 window (384) on a map larger than it.
POOL_CASES = [
    ("astronaut.png", (64, 96), (24, 24)),  # local, k = 16 + 8
    ("astronaut.png", (64, 96), (32, 32)),  # local, a power of two
    ("astronaut.png", (64, 96), (96, 96)),  # global
    ("astronaut.png", (64, 96), (64, 96)),  # global, window exactly the map
    ("astronaut.png", (64, 96), (96, 48)),  # H clamped, W local
    ("astronaut.png", (64, 96), (24, 200)),  # W clamped, H local
    ("chelsea.png", (45, 80), (24, 24)),  # level 4 of a 720x1280 frame
    ("chelsea.png", (37, 53), (23, 29)),  # odd everything
    ("chelsea.png", (64, 96), (63, 95)),  # valid map 2x2: pads of 31/31 and 47/47
    ("coffee.png", (400, 600), (384, 384)),  # the real level-0 window: 384 = 256 + 128
    ("coffee.png", (128, 400), (96, 384)),  # H clamped, W = 384
]


def _features(photo: str, size: tuple[int, int]) -> torch.Tensor:
    """Real-photo NAFNet features: a photo crop through the intro conv and the first encoder block."""
    net = random_checkpoint(SMALL, seed=3, scale=0.1).build_reference()
    x = torch.from_numpy(to_nchw(photo_array(photo, size, offset=(0, 0))))
    with torch.no_grad():
        return net.encoders[0](net.intro(x)) * 4  # |x| up to ~10


def _definition(x: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """TLC's pool written out independently: avg_pool2d over every full window, index-based replicate padding."""
    h, w = x.shape[-2:]
    if kernel[0] >= h and kernel[1] >= w:
        return x.double().mean((2, 3), keepdim=True).to(x.dtype)
    k1, k2 = min(h, kernel[0]), min(w, kernel[1])
    valid = F.avg_pool2d(x.double(), (k1, k2), stride=1)
    vh, vw = valid.shape[-2:]
    assert (vh, vw) == (h - k1 + 1, w - k2 + 1)
    top, left = (h - vh) // 2, (w - vw) // 2  # megvii: top = (h-_h)//2, bottom = (h-_h+1)//2, same for W
    rows = [min(max(i - top, 0), vh - 1) for i in range(h)]
    cols = [min(max(j - left, 0), vw - 1) for j in range(w)]
    return valid[:, :, rows][:, :, :, cols].to(x.dtype)


def test_kernels_follow_megvii():
    assert tlc_kernels(PRESETS["GoPro-width32"]) == [(384, 384), (192, 192), (96, 96), (48, 48), (24, 24)]
    assert tlc_kernels(SMALL, train_size=64) == [(96, 96), (48, 48), (24, 24), (12, 12), (6, 6)]
    # non-square training crops: per axis, base = int(train * 1.5)
    assert tlc_kernels(SMALL, train_size=(64, 128))[0] == (96, 192)
    with pytest.raises(ValueError, match="multiple of 16"):
        tlc_kernels(SMALL, train_size=100)


def test_to_tlc_puts_each_levels_kernel_in_every_block():
    ref = random_checkpoint(SMALL).build_reference()
    local = to_tlc(ref, train_size=64)
    kernels = tlc_kernels(SMALL, 64)
    levels = [lv for lv, _ in block_levels(local)]
    # SMALL: encoders (1,1,1,2) at levels 0..3, one middle block at 4, decoders (1,1,1,1) at 3,2,1,0
    assert levels == [0, 1, 2, 3, 3, 4, 3, 2, 1, 0]
    for lv, block in block_levels(local):
        assert isinstance(block.sca[0], TLCPool) and block.sca[0].kernel == kernels[lv]
    assert all(isinstance(b.sca[0], GlobalAvgPool) for _, b in block_levels(ref))  # input untouched
    with pytest.raises(TypeError):
        to_tlc(local)


@pytest.mark.parametrize("photo, size, kernel", POOL_CASES)
def test_tlc_pool_matches_definition(photo, size, kernel):
    x = _features(photo, size)
    out, want = TLCPool(kernel)(x), _definition(x, kernel)
    assert out.shape == want.shape
    assert out.shape[-2:] == ((1, 1) if kernel[0] >= size[0] and kernel[1] >= size[1] else size)
    torch.testing.assert_close(out, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("photo, size, kernel", POOL_CASES)
def test_box_mean_matches_tlc_pool(photo, size, kernel):
    x = _features(photo, size)
    ref = TLCPool(kernel)
    new = TLCBoxMean.from_reference(ref)
    a, b = ref(x), new(x)
    assert a.shape == b.shape
    assert (a - b).abs().max().item() <= 1e-5


def test_box_mean_is_fp16_safe():
    """At |x| ~ 300 over the 384x384 window the integral image overflows fp16; the box mean of means does not."""
    x = _features("coffee.png", (400, 600)) * 30 + 100
    assert not torch.isfinite(x.half().cumsum(-1).cumsum(-2)).all()
    out = TLCBoxMean((384, 384))(x.half()).float()
    ref = TLCPool((384, 384))(x)
    assert torch.isfinite(out).all()
    assert (out - ref).abs().max() <= 5e-3 * ref.abs().max()


def test_tlc_equals_plain_network_where_pooling_is_global():
    ref = random_checkpoint(SMALL, seed=2, scale=0.1).build_reference()
    x = torch.from_numpy(to_nchw(photo_array("astronaut.png", (96, 96))))
    with torch.no_grad():
        assert torch.equal(to_tlc(ref, train_size=64)(x), ref(x))


@pytest.mark.parametrize("size", [(128, 192), (64, 192)])  # local everywhere; H clamped at every level
def test_tlc_deploy_network_matches_tlc_reference(size):
    ck = random_checkpoint(SMALL, seed=2, scale=0.1)
    ref = ck.build_reference()
    local, dep = to_tlc(ref, train_size=64), to_tlc_deploy(to_deploy(ref), train_size=64)
    assert all(isinstance(b.sca[0], TLCBoxMean) for _, b in block_levels(dep))
    assert all(isinstance(b.sca[0].global_mean, SeparableGlobalMean) for _, b in block_levels(dep))
    x = torch.from_numpy(to_nchw(photo_array("astronaut.png", size)))
    with torch.no_grad():
        a, b, plain = local(x), dep(x), ref(x)
    assert (a - b).abs().max().item() <= 1e-4
    assert (a - plain).abs().max().item() > 1e-2  # TLC changed the output: the pools really are local
    with pytest.raises(TypeError):
        to_tlc_deploy(ref)


@pytest.fixture(scope="module")
def exported_tlc(tmp_path_factory):
    """SMALL exported with TLC (train size 64: kernels 96..6) at 128x192 fp32: local at every level."""
    from nafnet_litert.litert.convert import export

    ck = random_checkpoint(SMALL, seed=2, scale=0.1)
    path = tmp_path_factory.mktemp("tlc") / "small_tlc.tflite"
    return ck, export(ck, path, (128, 192), "fp32", tlc=True, tlc_train_size=64)


def test_tlc_export_is_gpu_clean_and_records_kernels(exported_tlc):
    _, res = exported_tlc
    st = static_audit(res.model_path)
    hist = st.graph.op_histogram()
    assert st.gpu_clean, st.summary()
    assert "CUMSUM" not in hist and "GATHER_ND" not in hist and "GATHER" not in hist
    assert "CONCATENATION" not in hist and st.summary()["unproven_ops"] == {}  # replicate pad: PAD + edge masks
    assert st.graph.max_rank() <= 4
    assert hist.get("RESIZE_NEAREST_NEIGHBOR", 0) > 0 and hist.get("SLICE", 0) > 0
    tlc = json.loads(res.sidecar_path.read_text())["tlc"]
    assert tlc["train_size"] == 64 and tlc["base_ratio"] == 1.5
    assert [lv["kernel"] for lv in tlc["levels"]] == [[96, 96], [48, 48], [24, 24], [12, 12], [6, 6]]
    assert [lv["pool"] for lv in tlc["levels"]] == ["local"] * 5


def test_tlc_export_matches_reference_on_litert_cpu(exported_tlc):
    from nafnet_litert.litert import LiteRTModel

    ck, res = exported_tlc
    x = to_nchw(photo_array("astronaut.png", (128, 192), offset=(100, 150)))
    with torch.no_grad():
        want = to_tlc(ck.build_reference(), train_size=64)(torch.from_numpy(x)).numpy()
    model = LiteRTModel(res.model_path, "cpu")
    try:
        out = model.run(x)
    finally:
        model.close()
    assert np.abs(out - want).max() <= 1e-4


def test_tlc_export_is_fully_accelerated_on_gpu(exported_tlc):
    """LiteRT's GPU accelerator takes the whole TLC graph, and its fp32 pass (enforce_f32) matches the reference."""
    from nafnet_litert.litert import GpuUnavailable, LiteRTModel, ensure_vulkan_icd

    try:
        ensure_vulkan_icd()
    except GpuUnavailable as e:
        pytest.skip(str(e))
    ck, res = exported_tlc
    x = to_nchw(photo_array("astronaut.png", (128, 192), offset=(100, 150)))
    with torch.no_grad():
        want = to_tlc(ck.build_reference(), train_size=64)(torch.from_numpy(x)).numpy()
    model = LiteRTModel(res.model_path, "gpu", gpu_precision="fp32")
    try:
        assert model.is_fully_accelerated()
        out = model.run(x)
    finally:
        model.close()
    assert np.abs(out - want).max() <= 1e-4


def test_tlc_export_bad_train_size_is_a_clear_error(tmp_path, small_checkpoint):
    from nafnet_litert.errors import ExportError
    from nafnet_litert.litert.convert import export

    with pytest.raises(ExportError, match="multiple of 16"):
        export(small_checkpoint, tmp_path / "m.tflite", 64, "fp32", tlc=True, tlc_train_size=100)
    assert not list(tmp_path.iterdir())


def test_tlc_export_fp16_headroom_on_the_file(exported_tlc):
    """The per-op fp16 headroom runs on the TLC file itself: its box means (SLICE/ADD/MUL chains) and edge
    padding are measured op by op, and none comes near fp16's limits."""
    from nafnet_litert.verify.headroom import measure_headroom

    _, res = exported_tlc
    x = to_nchw(photo_array("astronaut.png", (128, 192), offset=(100, 150)))
    rep = measure_headroom(res.model_path, x)
    ops = {r.op for r in rep.rows}
    assert {"PAD", "SLICE", "RESIZE_NEAREST_NEIGHBOR"} <= ops
    assert rep.passed and rep.overflow_count == 0 and rep.nonfinite_count == 0, rep.format_table()
    assert len(rep.rows) == len(static_audit(res.model_path).graph.ops)
