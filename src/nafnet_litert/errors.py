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


class GpuUnavailable(NafnetLitertError):
    """No Vulkan adapter for LiteRT's GPU accelerator."""


class ProfileError(NafnetLitertError):
    """The per-op profiler cannot run on this model or machine."""


class DataError(NafnetLitertError):
    """Training or validation data is missing, empty or inconsistent."""


class TrainError(NafnetLitertError):
    """Training cannot start or continue as asked (bad option, incompatible state file, diverged)."""


class DatasetError(NafnetLitertError):
    """The evaluation folder has no usable (blurred, sharp) pairs, or a blurred image lacks its partner."""


class EvalError(NafnetLitertError):
    """The restore callable returned something that cannot be scored against the target."""


class ImageError(NafnetLitertError):
    """An input image is missing or unreadable, or an output format is not supported."""


class OutputError(NafnetLitertError):
    """An output cannot be written where it was asked for."""


class WebError(NafnetLitertError):
    """The browser site cannot be built or served as asked."""


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
