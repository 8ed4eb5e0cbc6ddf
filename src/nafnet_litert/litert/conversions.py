"""Float conversions made once: litert-torch's float32 flatbuffer of a network, kept in this process and in the
model cache's ``conversions`` folder, so that exporting the same network again (another precision, the same
model again, another process) costs a file read instead of a conversion (a minute for GoPro-w32).

Why reuse is exact: every precision is made from this one float32 conversion (:func:`.convert.convert_to_tflite`),
and a conversion is named by a key that determines it: a hash of the checkpoint's tensors, every export option,
the size and layout, the graph recipe, the versions of the converting libraries and a hash of this package's own
code (a changed rewrite never meets an older conversion). A file is used only when its content still has the
SHA-256 its name records; a damaged one is deleted and converted again. The cache is an optimisation: a cache that
cannot be read or written (read-only, full) is passed over silently. It keeps the most recently used conversions
up to :data:`DISK_BUDGET` bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from functools import cache
from pathlib import Path

from ..io.files import atomic_write_bytes
from .cachedir import cache_dir

#: The conversions folder's size limit: the newest conversions are kept (a w32 network at 256 px is 68 MB).
DISK_BUDGET = 512 << 20
#: Conversions kept in memory by this process, newest last.
MEMORY_ENTRIES = 2

_memory: dict[str, bytes] = {}


def reuse_or_convert(key: tuple, convert: Callable[[], bytes]) -> bytes:
    """The float32 conversion named by ``key`` (see the module's docstring), from memory, the disk cache, or
    ``convert()`` (then stored in both)."""
    name = hashlib.sha256(repr((*key, code_hash())).encode()).hexdigest()[:32]
    buf = _memory.get(name) or _read(name)
    if buf is None:
        buf = convert()
        _write(name, buf)
    _memory.pop(name, None)
    _memory[name] = buf
    while len(_memory) > MEMORY_ENTRIES:
        _memory.pop(next(iter(_memory)))
    return buf


def forget() -> None:
    """Drop this process's in-memory conversions (the disk cache stays): the next export reads or converts."""
    _memory.clear()


@cache
def code_hash() -> str:
    """A hash of this package's source files: a conversion made by other code is never reused."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _folder(writable: bool) -> Path:
    return cache_dir(writable=writable) / "conversions"


def _read(name: str) -> bytes | None:
    with contextlib.suppress(Exception):  # no cache, unreadable: convert instead
        for path in _folder(writable=False).glob(f"{name}_*.tflite"):
            buf = path.read_bytes()
            if path.stem.split("_", 1)[1] == hashlib.sha256(buf).hexdigest():
                with contextlib.suppress(OSError):
                    path.touch()  # recently used: kept longest
                return buf
            with contextlib.suppress(OSError):
                path.unlink()  # damaged
    return None


def _write(name: str, buf: bytes) -> None:
    with contextlib.suppress(Exception):  # read-only, full, not creatable: the export goes on without it
        folder = _folder(writable=True)
        folder.mkdir(exist_ok=True)
        atomic_write_bytes(folder / f"{name}_{hashlib.sha256(buf).hexdigest()}.tflite", buf)
        _evict(folder)


def _evict(folder: Path) -> None:
    files = sorted(folder.glob("*.tflite"), key=lambda p: p.stat().st_mtime, reverse=True)
    total = 0
    for p in files:
        total += p.stat().st_size
        if total > DISK_BUDGET:
            p.unlink()
