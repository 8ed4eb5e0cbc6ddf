"""Train a (small) NAFNet in PyTorch, resumably and deterministically.

Recipe (after the NAFNet GoPro configs): AdamW with betas (0.9, 0.9), learning rate 1e-3 on a cosine schedule
down to 1e-7 over the whole run, no warm-up, gradient-norm clipping at 0.01, and the PSNR loss

    loss = 10 * log10(mean((out - gt)**2) + 1e-8)      (per sample over C, H, W; then the batch mean)

i.e. minus the PSNR in dB, on RGB (``toY`` off). The official configs multiply it by a ``loss_weight`` (0.5 or
1); with Adam that is only a scale, so it is left at 1 and the logged loss reads directly as -PSNR.
Weight decay is 0 by default (the brief; the official GoPro configs use 1e-3, available as an argument).

Determinism: the model is initialised after ``torch.manual_seed(seed)``, and the batch of step ``s`` is drawn
from ``numpy.random.default_rng([seed, s])``, so a run is a pure function of its arguments and a resumed run
is bit-identical to an uninterrupted one (on the same machine and thread count).

Files: ``<out>.state.pt`` holds everything needed to resume (fp32 model, optimizer, step, schedule, RNG state,
loss history), written atomically every ``save_every`` steps, on Ctrl-C and at the end; ``<out>`` (a
``.safetensors``) gets the final weights in fp16 with the config in its metadata.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from argparse import Namespace
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..models.checkpoint import load_checkpoint, save_safetensors
from ..io.files import atomic_path, check_writable, full_disk_as_enospc
from ..io.image import centre_crop
from ..errors import TrainError
from ..metrics import psnr, to_uint8
from ..models.config import PRESETS, NAFNetConfig
from ..models.reference import NAFNet
from .data import DataError, LoadedPair, TrainingData, bundled_sharp_images, load_pairs, load_sharp_folders

#: Small architectures meant to be trained here (CPU-trainable, mobile-friendly).
TRAIN_CONFIGS: dict[str, NAFNetConfig] = {
    "small": NAFNetConfig(width=16, enc_blocks=(1, 1, 1, 4), middle_blocks=1, dec_blocks=(1, 1, 1, 1)),
    "tiny": NAFNetConfig(width=8, enc_blocks=(1, 1), middle_blocks=1, dec_blocks=(1, 1)),
}

STATE_FORMAT = "nafnet_litert.train_state/1"


@dataclass
class TrainResult:
    out_path: Path
    state_path: Path
    config: NAFNetConfig
    step: int  #: steps done in total (including resumed ones)
    steps: int  #: steps asked for
    finished: bool  #: step == steps and the final weights were written
    losses: list[float] = field(default_factory=list)  #: per-step loss (-PSNR dB) since step 0
    val_history: list[tuple[int, float]] = field(default_factory=list)  #: (step, PSNR dB)
    seconds: float = 0.0  #: wall time of this call's training steps
    steps_run: int = 0  #: steps run by this call

    @property
    def val_psnr(self) -> float | None:
        return self.val_history[-1][1] if self.val_history else None


# ------------------------------------------------------------------------------------------------ loss, metric


def psnr_loss(out: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """NAFNet's PSNRLoss (toY off, weight 1): mean over the batch of 10*log10(per-sample MSE + 1e-8)."""
    mse = (out - gt).pow(2).flatten(1).mean(1)
    return (10.0 / math.log(10.0)) * torch.log(mse + 1e-8).mean()


def psnr_u8(out: torch.Tensor, gt: torch.Tensor) -> float:
    """PSNR in dB of an output rounded to 8 bits (as it would be saved) against an 8-bit ``gt`` in [0, 1], by the
    package's one PSNR (``inf`` when identical)."""
    return psnr(to_uint8(out.detach().cpu().numpy()), to_uint8(gt.detach().cpu().numpy()))


def _centre(a: np.ndarray, crop: int | None) -> np.ndarray:
    return a if crop is None else centre_crop(a, crop, crop)


def _as_tensor(a: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.float()
    a = np.asarray(a)
    t = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float()
    return t / 255.0 if a.dtype == np.uint8 else t


@torch.no_grad()
def evaluate(model: NAFNet, pairs: Sequence[LoadedPair | tuple], crop: int | None = 256) -> float:
    """Mean PSNR (dB, 8-bit-rounded output) over (blurred, sharp) pairs — :class:`LoadedPair` or H x W x 3 array
    tuples (uint8 or float in [0, 1]) — on centre crops of ``crop`` (``None``: full images)."""
    was_training = model.training
    model.eval()
    scores = []
    for p in pairs:
        blur, sharp = (p.blur, p.sharp) if isinstance(p, LoadedPair) else p
        x = _as_tensor(_centre(np.asarray(blur), crop))[None]
        y = _as_tensor(_centre(np.asarray(sharp), crop))[None]
        scores.append(psnr_u8(model(x), y))
    model.train(was_training)
    return float(np.mean(scores)) if scores else float("nan")


def cosine_lr(step: int, total: int, lr: float, min_lr: float) -> float:
    """Learning rate before update ``step`` (0-based) of ``total``: cosine from ``lr`` to ``min_lr``."""
    t = min(step, total) / max(total, 1)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))


# ----------------------------------------------------------------------------------------------------- state


def state_path_for(out_path: str | Path) -> Path:
    return Path(str(out_path) + ".state.pt")


def _atomic_torch_save(obj: object, path: Path) -> None:
    with atomic_path(path) as tmp, full_disk_as_enospc(tmp):
        torch.save(obj, str(tmp))


def _atomic_safetensors(model: NAFNet, path: Path, half: bool) -> None:
    with atomic_path(path) as tmp, full_disk_as_enospc(tmp):
        save_safetensors(model, tmp, half=half)


def _load_state(path: Path) -> dict:
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, foreign or unsafe file
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise TrainError(f"{path}: unreadable training state ({msg}); delete it to start over") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise TrainError(f"{path}: not a training state written by nafnet-litert; delete it to start over")
    return state


# ------------------------------------------------------------------------------------------------------ train


def train(
    config: NAFNetConfig,
    data: TrainingData,
    steps: int,
    out_path: str | Path,
    *,
    batch_size: int = 8,
    crop: int = 128,
    lr: float = 1e-3,
    min_lr: float = 1e-7,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.9),
    grad_clip: float | None = 0.01,
    seed: int = 0,
    resume: bool = True,
    save_every: int = 500,
    val_pairs: Sequence[LoadedPair | tuple] | None = None,
    val_every: int = 1000,
    val_crop: int | None = 256,
    threads: int | None = None,
    init_state_dict: Mapping[str, torch.Tensor] | None = None,
    identity_init: bool = True,
    compiled: bool = False,
    stop_after: int | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``config`` on ``data`` for ``steps`` steps; see the module docstring for the recipe and files.

    ``resume``: continue from ``<out>.state.pt`` when it exists (else it is overwritten). ``stop_after``: run
    at most this many steps in this call, save the state and return (``finished`` False) — for time slices.
    ``init_state_dict``: start from these weights (fine-tuning) instead of a fresh initialisation.
    ``identity_init``: zero the last convolution of a fresh model, so (with ``beta``/``gamma`` already zero) it
    starts as the identity, at the input's PSNR instead of ~12 dB below it; the official code does not, but
    short CPU runs gain from it (ignored with ``init_state_dict``).
    ``compiled``: run the training forward and backward through ``torch.compile`` (it fuses NAFNet's many
    element-wise ops; about 12% faster steps for the small config on a 2-core CPU, after ~1 min of compiling).
    The eager module is what is optimised and saved, so states and weights are interchangeable with eager runs.
    """
    _check_options(config, steps, batch_size, crop, lr, min_lr, seed, save_every, val_every, threads, stop_after)
    if compiled and not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        raise TrainError("--compile needs a C++ compiler (torch.compile builds CPU kernels with it): install g++")
    out_path = Path(out_path)
    if out_path.suffix != ".safetensors":
        raise TrainError(f"output must be a .safetensors file, got {out_path}")
    if out_path.is_dir():
        raise TrainError(f"output {out_path} is a folder")
    check_writable(out_path.parent)  # before hours of training, not after
    out_path.parent.mkdir(parents=True, exist_ok=True)
    state_path = state_path_for(out_path)
    data.eligible(crop)  # fail now, not at the first batch
    say = log or (lambda msg: None)

    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_det_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    if threads:
        torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        torch.manual_seed(seed)
        model = NAFNet(config)
        if identity_init and init_state_dict is None:
            with torch.no_grad():
                model.ending.weight.zero_()
                model.ending.bias.zero_()
        if init_state_dict is not None:
            try:
                model.load_state_dict(dict(init_state_dict), strict=True)
            except RuntimeError as e:
                raise TrainError(f"initial weights do not fit {config.describe()}: {str(e).splitlines()[0]}") from None
        opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=betas, weight_decay=weight_decay)
        step, losses, val_history = 0, [], []
        hparams = dict(batch_size=batch_size, crop=crop, lr=lr, min_lr=min_lr, weight_decay=weight_decay,
                       betas=list(betas), grad_clip=grad_clip, seed=seed, steps=steps,
                       identity_init=identity_init and init_state_dict is None)  # fmt: skip

        if resume and state_path.exists():
            state = _load_state(state_path)
            saved = NAFNetConfig.from_dict(state["config"])
            if saved != config:
                raise TrainError(
                    f"{state_path}: holds a {saved.describe()} run, not {config.describe()}; "
                    "delete it or choose another output"
                )
            model.load_state_dict(state["model"], strict=True)
            opt.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["torch_rng"])
            step = int(state["step"])
            losses = [float(v) for v in state["losses"].tolist()]
            val_history = [(int(s), float(v)) for s, v in state["val_history"]]
            changed = [f"{k} {state['hparams'].get(k)} -> {v}" for k, v in hparams.items()
                       if state["hparams"].get(k) != v]  # fmt: skip
            say(f"resumed from {state_path} at step {step}" + (f" (changed: {', '.join(changed)})" if changed else ""))
        elif state_path.exists():
            say(f"not resuming: {state_path} will be overwritten")

        def save_state() -> None:
            _atomic_torch_save(
                {
                    "format": STATE_FORMAT,
                    "config": config.to_dict(),
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "schedule": {"kind": "cosine", "lr": lr, "min_lr": min_lr, "total": steps},
                    "step": step,
                    "torch_rng": torch.get_rng_state(),
                    "losses": torch.tensor(losses, dtype=torch.float32),
                    "val_history": [[s, v] for s, v in val_history],
                    "hparams": hparams,
                },
                state_path,
            )

        last_val = val_history[-1][1] if val_history else None
        end = steps if stop_after is None else min(steps, step + stop_after)
        start_step, t0 = step, time.perf_counter()
        bar = _bar(steps, step, progress)
        model.train()
        forward = torch.compile(model) if compiled else model
        try:
            while step < end:
                for group in opt.param_groups:
                    group["lr"] = cosine_lr(step, steps, lr, min_lr)
                blur, sharp = data.batch(np.random.default_rng([seed, step]), batch_size, crop)
                loss = psnr_loss(forward(blur), sharp)
                if not torch.isfinite(loss):
                    raise TrainError(f"loss became {float(loss)} at step {step}; lower the learning rate")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                opt.step()
                step += 1
                losses.append(float(loss.detach()))
                if val_pairs and (step % val_every == 0 or step == steps):
                    last_val = evaluate(model, val_pairs, val_crop)
                    val_history.append((step, last_val))
                    say(f"step {step}: validation PSNR {last_val:.2f} dB")
                if step % save_every == 0 or step == end:
                    save_state()
                if bar is not None:
                    bar.update(1)
                    recent = float(np.mean(losses[-20:]))
                    post = {"loss": f"{recent:.2f}", "lr": f"{opt.param_groups[0]['lr']:.1e}"}
                    if last_val is not None:
                        post["val"] = f"{last_val:.2f}dB"
                    bar.set_postfix(post, refresh=False)
        except KeyboardInterrupt:
            if step > start_step:
                save_state()
                say(f"interrupted: state saved at step {step} to {state_path}")
            raise
        finally:
            if bar is not None:
                bar.close()
        seconds = time.perf_counter() - t0

        finished = step >= steps
        if finished:
            if step == start_step:  # nothing left to do; make sure the state exists
                save_state()
            model.eval()
            _atomic_safetensors(model, out_path, half=True)
            say(f"wrote {out_path} (fp16) and {state_path} (fp32 state) after {step} steps")
        else:
            say(f"stopped at step {step} of {steps}; state in {state_path}")
        return TrainResult(
            out_path=out_path,
            state_path=state_path,
            config=config,
            step=step,
            steps=steps,
            finished=finished,
            losses=losses,
            val_history=val_history,
            seconds=seconds,
            steps_run=step - start_step,
        )
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det, warn_only=prev_det_warn)


def _bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, desc="train")


def _check_options(config, steps, batch_size, crop, lr, min_lr, seed, save_every, val_every, threads, stop_after):
    def positive(name, v):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise TrainError(f"{name} must be a positive integer, got {v!r}")

    for name, v in (("steps", steps), ("batch size", batch_size), ("crop", crop), ("save every", save_every),
                    ("validate every", val_every)):  # fmt: skip
        positive(name, v)
    if threads is not None:
        positive("threads", threads)
    if stop_after is not None:
        positive("stop after", stop_after)
    if not isinstance(seed, int) or seed < 0:
        raise TrainError(f"seed must be a non-negative integer, got {seed!r}")
    if crop % config.padder_size:
        raise TrainError(f"crop must be a multiple of {config.padder_size} for this NAFNet, got {crop}")
    if not (lr > 0 and 0 <= min_lr <= lr and math.isfinite(lr)):
        raise TrainError(f"need 0 <= min lr <= lr and lr > 0, got lr {lr}, min lr {min_lr}")


# ---------------------------------------------------------------------------------------------- CLI entry point


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
