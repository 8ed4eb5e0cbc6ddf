"""The package's one way to write JSON (base floor: imports nothing of the package).

Strict JSON has no NaN or infinity, yet a PSNR of identical images is ``inf``: every non-finite float is written
as ``null``. numpy scalars and arrays become Python numbers and lists, tuples become lists, keys become strings.
"""

from __future__ import annotations

import json
import math
from typing import Any


def jsonable(o: Any) -> Any:
    """``o`` with every value strict JSON can hold (non-finite floats -> None)."""
    if isinstance(o, dict):
        return {str(k): jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [jsonable(v) for v in o]
    if hasattr(o, "tolist") and not isinstance(o, (str, bytes)):  # numpy scalar or array
        return jsonable(o.tolist())
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


def dumps(o: Any, indent: int | None = 2) -> str:
    """``o`` as strict JSON text, ending in a newline."""
    return json.dumps(jsonable(o), indent=indent, allow_nan=False) + "\n"
