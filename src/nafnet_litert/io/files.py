"""Output files, safely: atomic writes with the user's permissions, and checks made before any work starts.

* **Atomic.** Everything the package writes goes to a temporary name in the target folder and is renamed into place
  only when complete, so a failure, Ctrl-C or SIGTERM never leaves a half-written file.
* **Permissions.** A new file gets the mode the user's umask gives any new file (0644 under 022), not the 0600 of a
  temporary file; a replaced file keeps its own mode.
* **Up front.** :func:`check_writable` finds out before minutes of work whether an output can be written there.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import OutputError


def current_umask() -> int:
    """The process umask, read without changing it (Linux ``/proc``); elsewhere set-and-restore."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # pragma: no cover - non-Linux fallback
    os.umask(mask)  # pragma: no cover
    return mask  # pragma: no cover


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so writers pick the right format); on success it
    replaces ``path`` with the mode of the file it replaces (or the umask's for a new file), on any exception it
    is removed."""
    path = Path(path)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        mode = 0o666 & ~current_umask()
    try:
        tmp = _new_temporary(path)
    except OSError as e:
        raise OutputError(f"cannot write {path} ({e.strerror})") from None
    try:
        yield Path(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OutputError(
                f"disk full writing {path.name}: nothing was replaced (free some space and run again)"
            ) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def disk_nearly_full(path: str | Path, margin: int = 4 << 20) -> bool:
    """Whether the filesystem holding ``path`` has less than ``margin`` bytes free."""
    import shutil

    try:
        return shutil.disk_usage(Path(path).parent).free < margin
    except OSError:
        return False


@contextlib.contextmanager
def full_disk_as_enospc(tmp: str | Path) -> Iterator[None]:
    """Library writers report a full disk in their own words (torch.save: "unexpected pos 128 vs 0"; safetensors
    and FFmpeg their own errors): inside an :func:`atomic_path`, turn such a failure on a nearly full disk into the
    ENOSPC that the atomic writer reports as "disk full"."""
    try:
        yield
    except OSError:
        raise
    except Exception:
        if disk_nearly_full(tmp):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) from None
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


#: Random characters in a temporary's name: ``.<stem>.<8 hex><suffix>`` (:func:`temporaries_of` relies on it).
_TOKEN_HEX = 8


def _temporary_suffix(path: Path) -> str:
    return path.suffix or ".part"  # the output's own suffix: writers choose their format by it


def _new_temporary(path: Path) -> str:
    """Create (O_EXCL, mode 0600) and return an unused ``.<stem>.<8 hex><suffix>`` beside ``path``."""
    import secrets

    for _ in range(100):
        tmp = path.parent / f".{path.stem}.{secrets.token_hex(_TOKEN_HEX // 2)}{_temporary_suffix(path)}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600))
        except FileExistsError:
            continue
        return str(tmp)
    raise FileExistsError(errno.EEXIST, "no unused temporary name", str(path))


def temporaries_of(path: str | Path) -> list[Path]:
    """The temporary files :func:`atomic_path` left beside ``path``: a writer killed mid-write (SIGKILL, a lost
    node) cannot remove its own."""
    import glob
    import re

    path = Path(path)
    if not path.parent.is_dir():
        return []
    prefix, suffix = f".{path.stem}.", _temporary_suffix(path)
    name = re.compile(re.escape(prefix) + f"[0-9a-f]{{{_TOKEN_HEX}}}" + re.escape(suffix))
    return [p for p in path.parent.glob(glob.escape(prefix) + "*") if name.fullmatch(p.name)]


def atomic_write_all(files: dict[Path, bytes]) -> None:
    """Write every file through its own temporary, and replace them only once all are written: a full disk while
    writing the last one leaves every previous file as it was (a model and its sidecar stay a pair)."""
    with contextlib.ExitStack() as stack:
        for path, data in files.items():  # each written as soon as its temporary exists: a full disk names it
            stack.enter_context(atomic_path(path)).write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    return Path(path)


def check_writable(folder: str | Path, what: str = "output folder") -> Path:
    """Make sure files can be created in ``folder`` (or, if it does not exist yet, in the nearest existing folder
    above it, where it would be created): a file is really created and removed, which also catches read-only
    mounts and root-owned folders. Returns ``folder``; raises :class:`OutputError` with one line."""
    folder = Path(folder)
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise OutputError(f"{what} {folder}: {probe} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as e:
        raise OutputError(f"cannot write to the {what} {folder} ({e.strerror or e})") from None
    return folder


def is_hidden(path: Path, root: Path) -> bool:
    """True for a file or folder below ``root`` whose name starts with a dot (``.git``, ``.DS_Store``, macOS
    AppleDouble ``._IMG_0001.JPG``)."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)
