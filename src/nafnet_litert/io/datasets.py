"""Find (blurred, sharp) image pairs in a GoPro-style folder: the one pair finder that evaluation
(:mod:`nafnet_litert.eval`) and training (:mod:`nafnet_litert.train`) both use.

Recognised layouts, at any depth below ``root``:

* ``blur/NAME`` next to ``sharp/NAME`` (GoPro_Large: ``test/GOPR0384_11_00/blur/000001.png``);
* ``input/NAME`` next to ``target/NAME`` (NAFNet's prepared ``datasets/GoPro/test``).

Only files directly inside a ``blur``/``input`` folder count; other folders (``blur_gamma``, ...) are
ignored.  A pair's name is the path of the blurred image relative to ``root`` with the ``blur``/``input``
component dropped, e.g. ``GOPR0384_11_00/000001.png`` or just ``000001.png``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from ..errors import DatasetError
from ..facts import PHOTO_SUFFIXES

#: (degraded, clean) folder names recognised as a pair
FOLDER_PAIRS = {"blur": "sharp", "input": "target"}


class Pair(NamedTuple):
    """A pair found on disk: its name and the paths of the blurred and the sharp image."""

    name: str
    blur_path: Path
    sharp_path: Path


def _images(folder: Path) -> dict[str, Path]:
    return {
        p.name: p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in PHOTO_SUFFIXES
    }


def find_pairs(root: str | Path) -> list[Pair]:
    """All (blurred, sharp) pairs below ``root``, sorted by name.  Raises :class:`DatasetError` when
    there are none, when a blurred image has no sharp image of the same name (or same stem with another
    image extension), or when two pairs would share a name."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    pairs: dict[str, Pair] = {}
    for dirpath, dirnames, _ in os.walk(root):
        dirnames.sort()
        parent = Path(dirpath)
        siblings = {d.lower(): d for d in dirnames}
        for d in dirnames:
            want = FOLDER_PAIRS.get(d.lower())
            if want is None:
                continue
            blur_dir = parent / d
            blur = _images(blur_dir)
            if not blur:
                continue
            if want not in siblings:
                raise DatasetError(f"{blur_dir} has no sibling '{want}' folder with the sharp images")
            sharp_dir = parent / siblings[want]
            sharp = _images(sharp_dir)
            by_stem: dict[str, list[Path]] = {}
            for p in sharp.values():
                by_stem.setdefault(p.stem, []).append(p)
            prefix = parent.relative_to(root).as_posix()
            for fname in sorted(blur):
                partner = sharp.get(fname)
                if partner is None and len(by_stem.get(blur[fname].stem, [])) == 1:
                    partner = by_stem[blur[fname].stem][0]
                if partner is None:
                    raise DatasetError(f"{blur[fname]} has no sharp partner in {sharp_dir}")
                name = fname if prefix == "." else f"{prefix}/{fname}"
                if name in pairs:
                    raise DatasetError(f"two blurred images would both be named {name} (under {parent})")
                pairs[name] = Pair(name, blur[fname], partner)
    if not pairs:
        raise DatasetError(
            f"no image pairs under {root}: expected blur/ + sharp/ or input/ + target/ folders "
            f"(with {', '.join(PHOTO_SUFFIXES)} files)"
        )
    return [pairs[k] for k in sorted(pairs)]
