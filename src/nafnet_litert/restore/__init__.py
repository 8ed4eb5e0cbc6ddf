"""Images in, restored images out: the one :class:`Restorer` (:mod:`.restorer`), its pixel and tensor helpers
(:mod:`.pixels`), tiling (:mod:`.tiling`), videos (:mod:`.video`) and file/folder/video jobs (:mod:`.batch`).
Loaded lazily: importing this package loads neither PyTorch nor LiteRT."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_getattr

if TYPE_CHECKING:  # the lazy names' types, for checkers and editors (never imported at run time here)
    from .batch import deblur, plan_jobs, run_jobs
    from .restorer import Restorer, RestoreOptions
    from .tiling import tiled_restore

_LAZY = {
    "Restorer": "restorer",
    "RestoreOptions": "restorer",
    "deblur": "batch",
    "plan_jobs": "batch",
    "run_jobs": "batch",
    "tiled_restore": "tiling",
}

__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = ["RestoreOptions", "Restorer", "deblur", "plan_jobs", "run_jobs", "tiled_restore"]  # sorted(_LAZY)
