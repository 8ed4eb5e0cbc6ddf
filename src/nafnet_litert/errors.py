"""Errors that reach the user as one clear line (the CLI prints ``str(err)`` and exits with ``err.exit_code``)."""

from __future__ import annotations


class NafnetLitertError(Exception):
    """Base class: something the user can fix (a bad file, a bad option). Never a bug."""

    exit_code = 2


class CheckpointError(NafnetLitertError):
    """The file is not a loadable NAFNet checkpoint (missing, truncated, unsafe pickle, wrong keys or shapes)."""


class ExportError(NafnetLitertError):
    """The model cannot be exported as asked (size not a multiple of the padder size, bad option)."""


class ModelFileError(NafnetLitertError):
    """A .tflite file is missing, unreadable or not a LiteRT flatbuffer."""


class AuditFailed(NafnetLitertError):
    """The audit ran and found the model not GPU-clean or not numerically faithful."""

    exit_code = 1


def describe(e: BaseException) -> str:
    """One line for any exception: the package's own message; "disk full" for ENOSPC (with the file when known);
    an OSError's reason and file; otherwise the exception's type and first line. Never a traceback."""
    import errno

    if isinstance(e, NafnetLitertError):
        return str(e)
    if isinstance(e, OSError):
        where = f" writing {e.filename}" if e.filename else ""
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"disk full{where} (nothing was replaced: free some space and run again)"
        if e.strerror:
            return f"{e.strerror}" + (f": {e.filename}" if e.filename else "")
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__
