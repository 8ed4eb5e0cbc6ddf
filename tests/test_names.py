"""Short tensor names (``litert.names``): labels only, so the compacted file computes bit for bit the same."""

from __future__ import annotations

import numpy as np

from nafnet_litert.litert.graph import read_graph
from nafnet_litert.litert.names import compact_tensor_names, short_name


def test_short_name_keeps_the_module_attributes():
    long = (
        "nafnet_litert.litert.convert.ExportWrapper/nafnet_litert.models.reference.NAFNet_net/"
        "torch.nn.modules.container.Sequential_middle_blks/nafnet_litert.models.deploy.lean.LeanBlock_0/"
        "torch.nn.modules.conv.Conv2d_conv2b;1"
    )
    assert short_name(long) == "net/middle_blks/0/conv2b;1"
    fused = long.replace("Conv2d_conv2b;1", "Conv2d_conv2b;") + long.replace("Conv2d_conv2b;1", "Conv2d_conv3")
    assert short_name(fused) == "net/middle_blks/0/conv2b;net/middle_blks/0/conv3"
    assert short_name("arith.constant11") == "arith.constant11" and short_name("serving_default_image") == "serving_default_image"


def test_compacted_model_is_smaller_unique_and_bit_identical(tmp_path, small_checkpoint, snapshot):
    import litert_torch
    import torch

    from nafnet_litert.litert import LiteRTModel
    from nafnet_litert.litert.convert import ExportWrapper, INPUT_NAME
    from nafnet_litert.models.deploy import to_deploy

    net = ExportWrapper(to_deploy(small_checkpoint.build_reference())).eval()
    raw_path, short_path = tmp_path / "raw.tflite", tmp_path / "short.tflite"
    with torch.no_grad():
        litert_torch.convert(net, sample_args=(), sample_kwargs={INPUT_NAME: torch.rand(1, 3, 32, 32)}).export(str(raw_path))
    raw = raw_path.read_bytes()
    short_path.write_bytes(compact_tensor_names(raw))
    g_raw, g_short = read_graph(raw_path), read_graph(short_path)
    assert len(short_path.read_bytes()) < 0.9 * len(raw)  # the names were most of this small file's bytes
    assert [op.name for op in g_raw.ops] == [op.name for op in g_short.ops]
    assert [(op.inputs, op.outputs) for op in g_raw.ops] == [(op.inputs, op.outputs) for op in g_short.ops]
    names = [t.name for t in g_short.tensors]
    assert len(set(names)) == len(names)
    share = sum(map(len, names)) / sum(len(t.name) for t in g_raw.tensors)
    assert share < 0.15
    assert round(share, 2) == snapshot
    assert g_raw.io() == g_short.io() and g_raw.signatures == g_short.signatures  # the contract keeps its names
    assert [t.shape for t in g_raw.tensors] == [t.shape for t in g_short.tensors]
    x = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    with LiteRTModel(raw_path, "cpu") as a, LiteRTModel(short_path, "cpu") as b:
        assert np.array_equal(a.run(x), b.run(x))
