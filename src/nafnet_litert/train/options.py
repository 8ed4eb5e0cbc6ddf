"""Training from options: the configs by name (:data:`TRAIN_CONFIGS`, :func:`resolve_config`), :class:`TrainOptions`
(what the CLI and :func:`train_main` take, unknown options refused) and :func:`train_main`, which loads the data
and calls :func:`~.trainer.train`."""

from __future__ import annotations

import sys
from argparse import Namespace
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TrainError
from ..models.checkpoint import load_checkpoint
from ..models.config import PRESETS, NAFNetConfig
from .data import DataError, TrainingData, bundled_sharp_images, load_pairs, load_sharp_folders
from .trainer import TrainResult, train

#: Small architectures meant to be trained here (CPU-trainable, mobile-friendly).
TRAIN_CONFIGS: dict[str, NAFNetConfig] = {
    "small": NAFNetConfig(width=16, enc_blocks=(1, 1, 1, 4), middle_blocks=1, dec_blocks=(1, 1, 1, 1)),
    "tiny": NAFNetConfig(width=8, enc_blocks=(1, 1), middle_blocks=1, dec_blocks=(1, 1)),
}


def resolve_config(name: str) -> NAFNetConfig:
    """A training preset (``small``, ``tiny``) or an official architecture name (``GoPro-width32``, ...)."""
    if name in TRAIN_CONFIGS:
        return TRAIN_CONFIGS[name]
    if name in PRESETS:
        return PRESETS[name]
    raise TrainError(f"unknown config {name!r} (choose from {', '.join([*TRAIN_CONFIGS, *PRESETS])})")


@dataclass
class TrainOptions:
    """Everything ``train_main`` takes, with its defaults (``None`` for a field given as None: the default)."""

    data: Sequence[str] | str | None = None
    synthetic_blur: Sequence[str] | str | None = None
    config: str = "small"
    steps: int | None = None
    out: str | Path | None = None
    seed: int = 0
    batch_size: int = 8
    crop: int = 128
    lr: float = 1e-3
    threads: int | None = None
    val: str | None = None
    val_every: int = 1000
    val_crop: int = 256
    real_fraction: float = 0.5
    save_every: int = 500
    resume: bool = True
    init: str | None = None
    identity_init: bool = True
    compiled: bool = False
    stop_after: int | None = None
    weight_decay: float = 0.0
    grad_clip: float = 0.01
    progress: bool = True
    log: Callable[[str], None] | None = None

    @classmethod
    def from_options(cls, options: Mapping, strict: bool = True) -> "TrainOptions":
        """From a mapping; an unknown key is a one-line error when ``strict`` (a misspelt option never passes
        silently), skipped otherwise (a whole CLI namespace holds the CLI's own keys too)."""
        import dataclasses

        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - names)
        if strict and unknown:
            raise TrainError(f"unknown training option(s) {', '.join(unknown)} (known: {', '.join(sorted(names))})")
        return cls(**{k: v for k, v in options.items() if k in names and v is not None})


def train_main(args: Namespace | Mapping | None = None, /, **kwargs) -> TrainResult:
    """Train from CLI-style options (an argparse Namespace, a mapping, or keyword arguments).

    Options: ``data`` (paired folders), ``synthetic_blur`` (sharp-image folders, or ``"bundled"`` for
    scikit-image's photos), ``config`` (``small``, ``tiny`` or an official name), ``steps``, ``out``
    (``.safetensors``), ``seed``, ``batch_size``, ``crop``, ``lr``, ``threads``, ``val`` (a paired folder),
    ``val_every``; optional ``val_crop``, ``real_fraction``, ``save_every``, ``resume``, ``init`` (a checkpoint
    to fine-tune), ``identity_init``, ``compiled``, ``stop_after``, ``weight_decay``, ``grad_clip``, ``progress``,
    ``log`` (a callable taking a line; default: stderr): the fields of :class:`TrainOptions`. ``None`` values
    take the defaults. An unknown option is a one-line error, except in an argparse Namespace (the CLI's whole
    namespace, which holds its own keys too).
    """
    cli = isinstance(args, Namespace)
    base = TrainOptions.from_options(vars(args) if cli else dict(args or {}), strict=not cli)
    o = {**vars(base), **{k: v for k, v in vars(TrainOptions.from_options(kwargs)).items() if k in kwargs}}
    log = o["log"] or _stderr_log
    if not o["out"]:
        raise TrainError("an output path (.safetensors) is required")
    if o["steps"] is None:
        raise TrainError("the number of steps is required")
    config = resolve_config(o["config"])
    data_dirs = _as_list(o["data"])
    synth = _as_list(o["synthetic_blur"])
    if not data_dirs and not synth:
        raise DataError("no training data: give paired folders (data) and/or sharp images (synthetic blur)")

    pairs = load_pairs(data_dirs, log=log) if data_dirs else []
    sharp: list[np.ndarray] = []
    folders = [s for s in synth if s != "bundled"]
    if "bundled" in synth:
        sharp += bundled_sharp_images()
        log(f"bundled: {len(sharp)} scikit-image photos")
    if folders:
        sharp += load_sharp_folders(folders, log=log)
    data = TrainingData(pairs, sharp, real_fraction=float(o["real_fraction"]))
    val_pairs = load_pairs([o["val"]], log=log) if o["val"] else None

    init_sd = None
    if o["init"]:
        ckpt = load_checkpoint(o["init"])
        if ckpt.config != config:
            raise TrainError(f"{o['init']}: is {ckpt.config.describe()}, not the chosen {config.describe()}")
        init_sd = ckpt.state_dict
    log(f"training {config.describe()} on {data.describe()}")
    return train(
        config, data, int(o["steps"]), o["out"],
        batch_size=int(o["batch_size"]), crop=int(o["crop"]), lr=float(o["lr"]), seed=int(o["seed"]),
        resume=bool(o["resume"]), save_every=int(o["save_every"]), val_pairs=val_pairs,
        val_every=int(o["val_every"]), val_crop=(int(o["val_crop"]) or None), threads=o["threads"],
        init_state_dict=init_sd, identity_init=bool(o["identity_init"]), compiled=bool(o["compiled"]),
        stop_after=o["stop_after"], weight_decay=float(o["weight_decay"]), grad_clip=(float(o["grad_clip"]) or None),
        log=log, progress=bool(o["progress"]),
    )  # fmt: skip


def _as_list(v) -> list[str]:
    if v is None:
        return []
    if isinstance(v, (str, Path)):
        return [str(v)]
    return [str(x) for x in v]


def _stderr_log(msg: str) -> None:
    from tqdm import tqdm

    tqdm.write(msg, file=sys.stderr)
