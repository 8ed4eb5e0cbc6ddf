"""The float-conversion cache (:mod:`nafnet_litert.litert.conversions`): a reused conversion gives the very bytes a
fresh litert-torch conversion gives, a damaged cached file is never used, and a cache that cannot be written costs
nothing but time."""

from __future__ import annotations

import hashlib

from nafnet_litert.litert import conversions
from nafnet_litert.litert.convert import convert_to_tflite, export


def _files(cache):
    return sorted((cache / "conversions").glob("*.tflite"))


def test_a_cached_conversion_is_the_fresh_conversion_byte_for_byte(tmp_path, monkeypatch, small_checkpoint):
    cache = tmp_path / "cache"
    monkeypatch.setenv("NAFNET_LITERT_CACHE", str(cache))
    conversions.forget()
    a = export(small_checkpoint, tmp_path / "a.tflite", 32, "fp32")
    (kept,) = _files(cache)  # one float conversion, named by its content's SHA-256
    assert kept.stem.split("_", 1)[1] == hashlib.sha256(kept.read_bytes()).hexdigest()

    conversions.forget()  # as a new process: only the disk cache holds it
    b = export(small_checkpoint, tmp_path / "b.tflite", 32, "fp16")
    fresh = convert_to_tflite(small_checkpoint_deploy(small_checkpoint), (32, 32), "fp16")  # no cache at all
    assert b.model_path.read_bytes() == fresh
    assert _files(cache) == [kept]

    kept.write_bytes(kept.read_bytes()[:-16] + bytes(16))  # damaged in place: its name no longer matches
    conversions.forget()
    c = export(small_checkpoint, tmp_path / "c.tflite", 32, "fp32")
    assert c.model_path.read_bytes() == a.model_path.read_bytes()
    (again,) = _files(cache)
    assert again.stem.split("_", 1)[1] == hashlib.sha256(again.read_bytes()).hexdigest()


def test_a_cache_that_cannot_be_written_costs_only_time(tmp_path, monkeypatch, small_checkpoint, small_exports):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("NAFNET_LITERT_CACHE", str(blocker / "cache"))
    conversions.forget()
    r = export(small_checkpoint, tmp_path / "m.tflite", 64, "fp32")
    assert r.model_path.read_bytes() == small_exports["fp32"].model_path.read_bytes()


def small_checkpoint_deploy(ckpt):
    """The network export converts for ``ckpt`` with the default options, built through the public API."""
    from nafnet_litert.models.deploy import to_deploy
    from nafnet_litert.models.deploy.lean import to_lean

    return to_lean(to_deploy(ckpt.build_reference(), scale="auto"))
