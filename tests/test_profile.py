"""``bench --profile``: LiteRT's own per-op profiler, mapped back to the graph's nodes and NAFNet's stages."""

from __future__ import annotations

import pytest

from nafnet_litert.litert.graph import read_graph
from nafnet_litert.litert.profile import profile_model
from nafnet_litert.bench.bench import format_profile, node_stages, profile_tables


@pytest.fixture(scope="module", params=["fp32", "fp16"])
def profiled(request, small_exports):
    path = small_exports[request.param].model_path
    return path, profile_model(path, threads=1, runs=3)


def test_every_compute_node_is_profiled_once_with_its_own_op(profiled):
    path, prof = profiled
    g = read_graph(path)
    compute = [i for i, op in enumerate(g.ops) if op.name != "DEQUANTIZE"]
    assert [o.node for o in prof.ops] == compute  # each node once, in order; fp16's DEQUANTIZEs are folded
    assert all(o.op == g.ops[o.node].name for o in prof.ops)
    # the graph's resizes run as TFLite kernels between XNNPACK partitions; everything else runs in XNNPACK
    resize = [o for o in prof.ops if o.op == "RESIZE_NEAREST_NEIGHBOR"]
    assert resize and all(o.kernel == "TFLite RESIZE_NEAREST_NEIGHBOR" for o in resize)
    assert prof.partitions == len(resize) + 1
    assert all(not o.kernel.startswith("TFLite") for o in prof.ops if o.op != "RESIZE_NEAREST_NEIGHBOR")
    # the op times fit in the wall clock, both means over the same runs (how much of it they fill depends on the
    # machine's load: no lower bound; a median wall failed against the mean op times under load)
    assert 0 < prof.total_ms <= 1.05 * prof.wall_ms, (prof.total_ms, prof.wall_ms)


def test_stage_table_follows_the_unet(profiled, small_checkpoint):
    path, prof = profiled
    g = read_graph(path)
    stages = node_stages(g)
    levels = len(small_checkpoint.config.enc_blocks)
    order = list(dict.fromkeys(stages))
    assert order == [f"encoder L{k}" for k in range(levels)] + ["middle"] + [f"decoder L{k}" for k in reversed(range(levels))]
    t = profile_tables(path, prof)
    assert [r["name"] for r in t["by_stage"]] == order
    assert abs(sum(r["share"] for r in t["by_op"]) - 1) < 1e-9 and abs(sum(r["share"] for r in t["by_stage"]) - 1) < 1e-9
    conv = next(r for r in t["by_op"] if r["name"] == "CONV_2D")
    assert conv["count"] == sum(op.name == "CONV_2D" for op in g.ops) and conv["gflops"] > 0
    text = format_profile(t, floor_gflops=conv["gflops"] * 2)
    assert "by stage" in text and "0.50x the sgemm rate" in text


def test_a_non_image_model_is_refused_in_one_line(tmp_path):
    import litert_torch
    import torch

    from nafnet_litert.litert.profile import ProfileError

    class TwoOut(torch.nn.Module):
        def forward(self, image):
            return image * 2, image + 1

    p = tmp_path / "two.tflite"
    litert_torch.convert(TwoOut().eval(), (torch.rand(1, 3, 8, 8),)).export(str(p))
    with pytest.raises(ProfileError, match="one input and one output"):
        profile_model(p)
