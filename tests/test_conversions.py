"""The float-conversion cache (:mod:`nafnet_litert.litert.conversions`): a reused conversion gives the very bytes a
fresh litert-torch conversion gives, a damaged cached file is never used, and a cache that cannot be written costs
nothing but time."""

from __future__ import annotations

import hashlib

import pytest

from nafnet_litert.litert import conversions
from nafnet_litert.litert.convert import export
from nafnet_litert.models.checkpoint import random_checkpoint
from nafnet_litert.models.config import NAFNetConfig


@pytest.fixture(scope="module")
def tiny():
    """A one-level network: the claims here are about files and bytes, and each conversion costs ~3 s, not ~10."""
    return random_checkpoint(NAFNetConfig(width=4, enc_blocks=(1,), middle_blocks=1, dec_blocks=(1,)), seed=3)


def _files(cache):
    return sorted((cache / "conversions").glob("*.tflite"))


def _named_by_content(path) -> bool:
    return path.stem.split("_", 1)[1] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_cached_conversion_is_the_fresh_conversion_byte_for_byte(tmp_path, monkeypatch, tiny):
    cache = tmp_path / "cache"
    monkeypatch.setenv("NAFNET_LITERT_CACHE", str(cache))
    conversions.forget()
    first = export(tiny, tmp_path / "first.tflite", 32, "fp16").model_path.read_bytes()  # converts
    (kept,) = _files(cache)  # one float conversion, named by its content's SHA-256
    assert _named_by_content(kept)

    conversions.forget()  # as a new process: only the disk cache holds it
    cached = export(tiny, tmp_path / "cached.tflite", 32, "fp16").model_path.read_bytes()
    int8 = export(tiny, tmp_path / "int8.tflite", 32, "int8")  # another precision, the same file
    assert _files(cache) == [kept] and int8.sidecar["precision"] == "int8"

    blocker = tmp_path / "file"  # a cache that cannot even be created: a fresh conversion, and no error
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("NAFNET_LITERT_CACHE", str(blocker / "cache"))
    conversions.forget()
    fresh = export(tiny, tmp_path / "fresh.tflite", 32, "fp16").model_path.read_bytes()
    assert cached == fresh == first

    monkeypatch.setenv("NAFNET_LITERT_CACHE", str(cache))
    kept.write_bytes(kept.read_bytes()[:-16] + bytes(16))  # damaged in place: its name no longer matches
    conversions.forget()
    again = export(tiny, tmp_path / "again.tflite", 32, "fp16").model_path.read_bytes()
    assert again == first
    (replaced,) = _files(cache)
    assert _named_by_content(replaced)
