"""fp16 stress on the artifact: export the stressed twin of a checkpoint exactly as a shipped model was exported.

The fp16 headroom check (:mod:`.audit`) measures the shipped file's own tensors. A checkpoint whose stream is
small (random weights, a small trained model) says little about fp16 overflow, so the audit also measures the
file's *stressed twin*: the same checkpoint transformed by :func:`~.model.stress.stressed_twin` (same function,
bottleneck |x| = 175 as in trained GoPro-w32) and exported with the options recorded in the file's sidecar JSON
(size, precision, layout, TLC, lean, native ops, scale mode). With ``--scale auto`` the twin is calibrated
again, as the recipe would calibrate such a checkpoint; a fixed scale is reused as it is.
"""

from __future__ import annotations

from pathlib import Path

from ..litert.sidecar import Sidecar, read_sidecar
from ..models.checkpoint import Checkpoint, checkpoint_from_model
from ..models.stress import TRAINED_BOTTLENECK, stressed_twin


def stress_checkpoint(ckpt: Checkpoint, target: float = TRAINED_BOTTLENECK) -> tuple[Checkpoint, list[float], list[float]]:
    """``(twin checkpoint, k per level, peak |x| per level)`` for ``ckpt`` (see :func:`~.model.stress.stressed_twin`)."""
    twin, k, peaks = stressed_twin(ckpt.build_reference(), target)
    return checkpoint_from_model(twin), k, peaks


def export_options(sidecar: Sidecar | dict | None) -> dict | None:
    """The :func:`~nafnet_litert.litert.convert.export` keyword arguments that reproduce a model from its sidecar
    (a :class:`~nafnet_litert.litert.sidecar.Sidecar`, or the dict of one), or None when it does not say."""
    if isinstance(sidecar, dict):
        try:
            sidecar = Sidecar.from_dict(sidecar)
        except ValueError:
            return None
    if not isinstance(sidecar, Sidecar) or not sidecar.is_ours:
        return None
    if sidecar.size is None or sidecar.precision is None or sidecar.layout is None:
        return None
    try:
        rewrites = sidecar.rewrites or {}
        tlc = sidecar.tlc
        return {
            "size": sidecar.size,
            "precision": sidecar.precision,
            "layout": sidecar.layout,
            "scale": _scale_option(rewrites),
            "lean": bool(rewrites.get("lean", False)),
            "native_ops": bool(rewrites.get("native_ops", False)),
            "straight": bool(sidecar.straight or False),
            "tlc": tlc is not None,
            "tlc_train_size": int(tlc["train_size"]) if tlc else 256,
        }
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _scale_option(rewrites: dict) -> str | float | list[float]:
    if rewrites.get("scale_mode", "auto") == "auto":
        return "auto"
    value = rewrites["layernorm_scale"]
    return [float(v) for v in value] if isinstance(value, list) else float(value)


def stressed_export(model_path: str | Path, reference: Checkpoint, out_dir: str | Path) -> tuple[Path, float] | None:
    """Export the stressed twin of ``reference`` like ``model_path`` into ``out_dir``: ``(path, peak stream |x|)``,
    or None when the model has no readable nafnet-litert sidecar."""
    from ..litert.convert import export

    opts = export_options(read_sidecar(model_path))
    if opts is None:
        return None
    twin, _k, peaks = stress_checkpoint(reference)
    path = Path(out_dir) / "stressed_twin.tflite"
    export(twin, path, **opts)
    return path, max(peaks)


__all__ = ["export_options", "stress_checkpoint", "stressed_export"]
