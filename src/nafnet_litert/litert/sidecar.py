"""The sidecar JSON beside every exported .tflite (``model.json`` next to ``model.tflite``): how it was exported.

:class:`Sidecar` is the one typed view of that file. :func:`~.convert.export` builds one and writes it with
:meth:`Sidecar.to_json`; every reader (the runtime's layout, the cache's integrity check, the audit's stressed
twin and HTML report) goes through :func:`read_sidecar`. Keys this version does not know are kept in
:attr:`Sidecar.extra`, after the known ones, so reading and writing a newer sidecar loses nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

#: What ``format`` starts with in a sidecar this package wrote.
FORMAT_PREFIX = "nafnet-litert/"
FORMAT = FORMAT_PREFIX + "1"


@dataclass(frozen=True)
class Sidecar:
    """One sidecar, its keys in the order :func:`~.convert.export` writes them (None: absent or null)."""

    format: str | None = FORMAT
    recipe: str | None = None  # convert.EXPORT_RECIPE
    model: str | None = None  # the .tflite file name
    architecture: str | None = None  # NAFNetConfig.describe()
    config: dict | None = None  # NAFNetConfig.to_dict()
    size: tuple[int, int] | None = None  # (height, width); {"height": .., "width": ..} in the JSON
    precision: str | None = None  # "fp32", "fp16" or "int8"
    quantization: dict | None = None  # convert.INT8_RECIPE for int8, else null
    layout: str | None = None  # "NCHW" or "NHWC"
    signature: dict | None = None  # {"key", "input", "output", "range"}
    rewrites: dict | None = None  # layernorm_scale, scale_mode, pool_scale, upsample, gate, lean, native_ops
    straight: bool | None = None  # a straight litert-torch conversion (no rewrite)
    tlc: dict | None = None  # {"train_size", "base_ratio", "levels"} for a TLC export, else null
    checkpoint: dict | None = None  # {"file", "sha256"}
    model_sha256: str | None = None
    file_size: int | None = None
    convert_seconds: float | None = None
    versions: dict | None = None  # library name -> version
    audit: dict | None = None  # StaticAudit.summary() of the exported file
    extra: dict = field(default_factory=dict)  # keys this version does not know, in file order

    @property
    def is_ours(self) -> bool:
        """Written by this package (``format`` is ``nafnet-litert/<n>``)."""
        return str(self.format or "").startswith(FORMAT_PREFIX)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        if self.size is not None:
            d["size"] = {"height": self.size[0], "width": self.size[1]}
        return {**d, **self.extra}

    def to_json(self) -> str:
        """The file's text: two-space indented JSON and a final newline."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, d: dict) -> "Sidecar":
        """Raises ValueError when ``d`` is not a JSON object or its ``size`` is not ``{"height": h, "width": w}``."""
        if not isinstance(d, dict):
            raise ValueError(f"a sidecar is a JSON object, not {type(d).__name__}")
        known = {f.name for f in fields(cls)} - {"extra"}
        kw = {k: v for k, v in d.items() if k in known}
        if kw.get("size") is not None:
            kw["size"] = _size(kw["size"])
        return cls(**{"format": None, **kw}, extra={k: v for k, v in d.items() if k not in known})

    @classmethod
    def from_json(cls, text: str) -> "Sidecar":
        """Raises ValueError (json.JSONDecodeError is one) on text that is not a sidecar."""
        return cls.from_dict(json.loads(text))

    def write(self, model_path: str | Path) -> Path:
        """Write beside ``model_path`` (not atomic: :func:`~.convert.export` writes the pair atomically itself)."""
        p = sidecar_path(model_path)
        p.write_text(self.to_json())
        return p


def _size(value) -> tuple[int, int]:
    try:
        h, w = value["height"], value["width"]
    except (KeyError, TypeError):
        raise ValueError(f"sidecar size must be {{'height': h, 'width': w}}, got {value!r}") from None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (h, w)):
        raise ValueError(f"sidecar size must hold integers, got {value!r}")
    return h, w


def sidecar_path(model_path: str | Path) -> Path:
    return Path(model_path).with_suffix(".json")


def read_sidecar(model_path: str | Path) -> Sidecar | None:
    """The sidecar beside ``model_path``, or None when it is missing, unreadable or not a sidecar."""
    p = sidecar_path(model_path)
    if not p.is_file():
        return None
    try:
        return Sidecar.from_json(p.read_text())
    except (OSError, ValueError):
        return None


__all__ = ["FORMAT", "Sidecar", "read_sidecar", "sidecar_path"]
