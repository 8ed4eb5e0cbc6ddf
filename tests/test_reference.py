"""The reference NAFNet against spandrel's (bit-identical to megvii's) on real photos."""

from __future__ import annotations

import pytest
import torch

from nafnet_litert.models.checkpoint import random_checkpoint
from nafnet_litert.restore.pixels import to_nchw
from nafnet_litert.models import PRESETS, NAFNet, NAFNetConfig
from nafnet_litert.bench.spandrel_graph import spandrel_nafnet  # spandrel's own NAFNet file, from its wheel

from tests.conftest import SMALL, photo_array


def test_official_gopro_w32_parameter_count():
    assert sum(p.numel() for p in NAFNet(PRESETS["GoPro-width32"]).parameters()) == 17_111_907


@pytest.mark.parametrize(
    "config, photo, size",
    [
        (SMALL, "astronaut.png", (101, 77)),
        (NAFNetConfig(width=16, enc_blocks=(2, 2), middle_blocks=2, dec_blocks=(2, 2)), "chelsea.png", (90, 131)),
        (PRESETS["GoPro-width32"], "coffee.png", (67, 93)),
    ],
)
def test_reference_matches_spandrel_on_real_photos(config, photo, size):
    ck = random_checkpoint(config, seed=3, scale=0.5)
    ours = ck.build_reference()
    theirs = spandrel_nafnet(config, ck.state_dict)
    x = torch.from_numpy(to_nchw(photo_array(photo, size, offset=(40, 60))))
    assert size[0] % 16 and size[1] % 16  # exercises the pad-and-crop path
    with torch.no_grad():
        a, b = ours(x), theirs(x)
    assert a.shape == x.shape
    diff = (a - b).abs().max().item()
    assert diff <= 1e-6, f"max abs {diff:.3g} vs spandrel"
    assert (a - x).abs().mean().item() > 1e-3  # the network did something: not an identity comparison
