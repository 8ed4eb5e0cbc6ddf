"""The typed sidecar (nafnet_litert.litert.sidecar): the JSON beside every .tflite, read and written without loss."""

from __future__ import annotations

import json

import pytest

from nafnet_litert.litert.sidecar import Sidecar, read_sidecar
from nafnet_litert.verify.stressed_export import export_options

_KEYS = [
    "format", "recipe", "model", "architecture", "config", "size", "precision", "quantization", "layout", "signature",
    "rewrites", "straight", "tlc", "checkpoint", "model_sha256", "file_size", "convert_seconds", "versions", "audit",
]  # fmt: skip


def _written() -> dict:
    """A sidecar as export writes it (every key, in export's order), plus a key from a later version."""
    d = {k: None for k in _KEYS}
    d.update(format="nafnet-litert/1", size={"height": 64, "width": 96}, precision="fp16", layout="NHWC",
             rewrites={"layernorm_scale": [16.0], "scale_mode": "fixed", "lean": True, "native_ops": False},
             straight=False, file_size=123, convert_seconds=1.5, later_key={"kept": [1, 2]})  # fmt: skip
    return d


def test_round_trip_is_byte_identical_and_keeps_unknown_keys():
    text = json.dumps(_written(), indent=2) + "\n"
    s = Sidecar.from_json(text)
    assert s.size == (64, 96) and s.layout == "NHWC" and s.is_ours
    assert s.extra == {"later_key": {"kept": [1, 2]}}
    assert s.to_json() == text


def test_read_returns_none_for_missing_broken_or_foreign_files(tmp_path):
    model = tmp_path / "m.tflite"
    assert read_sidecar(model) is None
    for text in ("{not json", "[1, 2]", json.dumps({"size": {"height": "64"}})):
        (tmp_path / "m.json").write_text(text)
        assert read_sidecar(model) is None, text
    Sidecar(format="nafnet-litert/1", layout="NCHW").write(model)
    assert read_sidecar(model).layout == "NCHW"


def test_export_options_from_a_typed_sidecar():
    s = Sidecar.from_dict(_written())
    assert export_options(s) == export_options(_written()) == {
        "size": (64, 96), "precision": "fp16", "layout": "NHWC", "scale": [16.0], "lean": True, "native_ops": False,
        "straight": False, "tlc": False, "tlc_train_size": 256,
    }  # fmt: skip
    assert export_options(Sidecar(format="other/1", size=(64, 64), precision="fp16", layout="NCHW")) is None
    assert export_options(None) is None


@pytest.mark.parametrize("bad", [{"height": 64}, [64, 64], {"height": True, "width": 64}])
def test_a_malformed_size_is_not_a_sidecar(bad):
    with pytest.raises(ValueError, match="size"):
        Sidecar.from_dict({"format": "nafnet-litert/1", "size": bad})
