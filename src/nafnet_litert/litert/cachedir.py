"""Where the package keeps what it makes once and finds again: exported models (:mod:`.cache`), float
conversions (:mod:`.conversions`) and the browser runtime's npm package (:mod:`..web.build`)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import NafnetLitertError


def cache_dir(writable: bool = True) -> Path:
    """Where restorers keep the models they export: ``$NAFNET_LITERT_CACHE``, default ``~/.cache/nafnet-litert``.
    A model's name holds the checkpoint's hash, the size, precision, TLC and :func:`export_key`. ``writable=False``:
    only where it is, for reading (a read-only cache that holds the model is usable)."""
    from ..io.files import check_writable

    d = Path(os.environ.get("NAFNET_LITERT_CACHE") or Path.home() / ".cache" / "nafnet-litert")
    if not writable:
        return d
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NafnetLitertError(f"cannot create the model cache {d} ({e.strerror}); set NAFNET_LITERT_CACHE") from None
    check_writable(d, "model cache (set NAFNET_LITERT_CACHE to move it)")
    return d
