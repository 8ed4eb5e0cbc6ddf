"""Models the package ships: ``default`` is a small NAFNet trained here (see ``weights/MODEL_CARD.md``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..errors import CheckpointError

DEFAULT_MODEL = "nafnet_small_deblur.safetensors"
MODEL_CARD = "MODEL_CARD.md"


def bundled_path(name: str = DEFAULT_MODEL) -> Path:
    p = Path(str(resources.files("nafnet_litert") / "weights" / name))
    if not p.is_file():
        raise CheckpointError(f"the bundled model {name} is missing from this installation ({p.parent})")
    return p


def is_default(spec: object) -> bool:
    return str(spec) == "default"
