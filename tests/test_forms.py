"""Op forms on the artifact: a nearest resize read off its stride grid fails the audit, statically and dynamically.

Two fixtures of the same computation (a stride-2 conv, then conv1x1 + PixelShuffle back to full size), converted at
test time: the parity-mask upsampler this project shipped before (one resize read at every sub-pixel offset: the
form litert-samples PR #167 found wrong on Mali) and the seed's zero-stuff form (:class:`ZeroStuffUpsample`).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nafnet_litert.litert import device_ops, forms
from nafnet_litert.litert.convert import convert_to_tflite
from nafnet_litert.litert.graph import read_graph
from nafnet_litert.litert.runtime import LiteRTModel
from nafnet_litert.models.deploy.upsample import ZeroStuffUpsample
from nafnet_litert.models.reference import Upsample
from nafnet_litert.verify.audit import audit


def _parity_masks(n: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    shape = [1, 1, 1, 1]
    shape[dim] = 2 * n
    odd = torch.tensor([float(k % 2) for k in range(2 * n)]).reshape(shape)
    return 1.0 - odd, odd


class OffGridUpsample(nn.Module):
    """The former default: 1x1 conv (rows sub-pixel-major), ONE nearest 2x resize, four channel slices, parity
    masks that keep each group at its sub-pixel offset, i.e. resized values read off the grid."""

    def __init__(self, up: Upsample) -> None:
        super().__init__()
        w = up.conv.weight.detach()
        out = w.shape[0] // 4
        self.conv = nn.Conv2d(w.shape[1], w.shape[0], 1, bias=False)
        self.conv.weight.data.copy_(w[[c * 4 + k for k in range(4) for c in range(out)]])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        s = F.interpolate(self.conv(x), size=(2 * h, 2 * w), mode="nearest").chunk(4, dim=1)
        even_c, odd_c = _parity_masks(w, 3)
        even_r, odd_r = _parity_masks(h, 2)
        return (s[0] * even_c + s[1] * odd_c) * even_r + (s[2] * even_c + s[3] * odd_c) * odd_r


class Net(nn.Module):
    def __init__(self, form: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.down = nn.Conv2d(3, 6, 2, stride=2)
        self.ref = Upsample(6)
        self.ref.conv.weight.data.normal_()
        self.up = OffGridUpsample(self.ref) if form == "off_grid" else ZeroStuffUpsample.from_reference(self.ref)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.down(x))

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ref(self.down(x))


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("forms")
    out = {}
    for form in ("off_grid", "zero_stuff"):
        net = Net(form).eval()
        path = folder / f"{form}.tflite"
        path.write_bytes(convert_to_tflite(net, (16, 24), "fp32"))
        out[form] = (net, path)
    return out


@pytest.mark.parametrize("form", ["off_grid", "zero_stuff"])
def test_both_fixtures_compute_pixelshuffle(fixtures, form):
    """Same numbers: the only difference between the two files is where the resize is read."""
    net, path = fixtures[form]
    x = np.random.default_rng(1).random((1, 3, 16, 24), np.float32)
    with torch.no_grad():
        ref = net.reference(torch.from_numpy(x)).numpy()
    got = LiteRTModel(path, "cpu").run(x)
    assert np.abs(got - ref).max() <= 1e-5


def test_static_check_names_the_off_grid_reads(fixtures):
    g = read_graph(fixtures["off_grid"][1])
    reads = forms.nearest_reads(g)
    assert len(reads) == 1 and reads[0].stride == (2, 2) and not reads[0].on_grid
    # every consumer of the resize is a channel slice, then a parity mask that keeps odd columns: the two ADDs
    # that combine the column groups read off-grid values
    assert [g.ops[n].name for n in reads[0].offending] == ["ADD", "ADD"]
    assert forms.rejected_forms(g)[forms.OFF_GRID][0] == reads[0].node

    good = read_graph(fixtures["zero_stuff"][1])
    (read,) = forms.nearest_reads(good)
    assert read.on_grid and read.offending == []
    assert forms.OFF_GRID not in forms.rejected_forms(good)
    # the seed's op sequence: RESIZE, the grid mask (as its row and column factors), PAD, CONV_2D 2x2, SLICE (crop)
    names = [op.name for op in good.ops[read.node : read.node + 6]]
    assert names == ["RESIZE_NEAREST_NEIGHBOR", "MUL", "MUL", "PAD", "CONV_2D", "SLICE"]


def test_a_mask_that_keeps_one_off_grid_value_is_caught():
    g = np.zeros((1, 4, 4, 1), np.float32)
    g[:, ::2, ::2] = 1
    assert forms.zero_off_grid(g, (1, 4, 4, 8), (2, 2))
    g[0, 1, 2, 0] = 1
    assert not forms.zero_off_grid(g, (1, 4, 4, 8), (2, 2))
    rows = np.array([1, 0, 1, 0], np.float32).reshape(1, 4, 1, 1)
    cols = rows.reshape(1, 1, 4, 1)
    assert not forms.zero_off_grid(rows, (1, 4, 4, 8), (2, 2))  # one factor alone keeps (even row, odd column)
    assert forms.zero_off_grid(forms.mask_product(forms.mask_product(None, rows), cols), (1, 4, 4, 8), (2, 2))


def test_dynamic_check_perturbs_only_off_grid_positions(fixtures):
    for form, changes in (("off_grid", True), ("zero_stuff", False)):
        path = fixtures[form][1]
        buf, n = forms.perturb_nearest(path.read_bytes())
        assert n == 1
        g = read_graph(buf)
        k = next(i for i, op in enumerate(g.ops) if op.name == "RESIZE_NEAREST_NEIGHBOR")
        assert forms.resize_flags(g, k) == (True, True)
        perturbed = path.with_name(f"{form}_perturbed.tflite")
        perturbed.write_bytes(buf)
        x = np.random.default_rng(2).random((1, 3, 16, 24), np.float32)
        same = np.array_equal(LiteRTModel(path, "cpu").run(x), LiteRTModel(perturbed, "cpu").run(x))
        assert same is not changes, form


def test_audit_fails_the_off_grid_form_and_passes_the_zero_stuff_form(fixtures):
    bad = audit(fixtures["off_grid"][1])
    f = bad.checks["forms"]
    assert not bad.passed and not f.passed
    assert f.data["dynamic"]["identical"] is False and f.data["dynamic"]["max_abs"] > 0
    assert forms.OFF_GRID in f.data["rejected"]
    text = bad.format_text()
    assert "RESIZE_NEAREST_OFF_GRID" in text and "PR #167" in text and "output CHANGED" in text

    good = audit(fixtures["zero_stuff"][1])
    assert good.passed, good.format_text()
    assert good.checks["forms"].data["dynamic"] == {
        "resizes_perturbed": 1, "identical": True, "max_abs": 0.0, "inputs": 1,
    }  # fmt: skip


def test_cli_audit_exits_1_on_the_off_grid_form(fixtures):
    path = fixtures["off_grid"][1]
    r = subprocess.run(
        [sys.executable, "-m", "nafnet_litert.cli", "audit", str(path), "--json"], capture_output=True, text=True
    )
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert out["checks"]["forms"]["passed"] is False
    rule = out["checks"]["forms"]["rejected"][forms.OFF_GRID]
    assert rule["source"] == device_ops.FORM_REJECTIONS[forms.OFF_GRID].source and rule["nodes"]
    r = subprocess.run([sys.executable, "-m", "nafnet_litert.cli", "audit", str(path)], capture_output=True, text=True)
    assert r.returncode == 1 and "RESIZE_NEAREST_OFF_GRID" in r.stdout and "metric_depth" in r.stdout


def test_every_form_is_sourced_or_says_why_not():
    for name, form in device_ops.FORMS.items():
        assert form.ops, name
        if form.evidence is None:
            assert form.note, name
        else:
            assert "Pixel 8a" in form.evidence, name
    assert forms.OFF_GRID in device_ops.FORM_REJECTIONS
