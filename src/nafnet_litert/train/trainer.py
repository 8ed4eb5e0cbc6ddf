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

Files: ``<out>.state.pt`` holds everything needed to resume (:class:`~.state.TrainState`: fp32 model, optimizer,
step, schedule, RNG state, loss history), written atomically every ``save_every`` steps, on Ctrl-C and at the end;
``<out>`` (a ``.safetensors``) gets the final weights in fp16 with the config in its metadata.

This module is the loop: :func:`train` (the driver) and :func:`train_step` (one optimisation step). The state and
its file are :mod:`.state`; options from the CLI and the configs by name are :mod:`.options`.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import TrainError
from ..io.files import check_writable
from ..photo import centre_crop
from ..metrics import psnr, to_uint8
from ..models.config import NAFNetConfig
from ..models.reference import NAFNet
from ..threads import torch_threads
from .data import LoadedPair, TrainingData
from .state import TrainState, atomic_safetensors, state_path_for


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
def validation_psnr(model: NAFNet, pairs: Sequence[LoadedPair | tuple], crop: int | None = 256) -> float:
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


# ------------------------------------------------------------------------------------------------------ train


def train_step(state: TrainState, forward: Callable[[torch.Tensor], torch.Tensor], data: TrainingData) -> float:
    """One optimisation step at ``state.step``: the batch drawn from ``default_rng([seed, step])``, the PSNR loss
    through ``forward`` (the model, or its compiled form), AdamW with gradient-norm clipping, then the schedule.
    Advances ``state.step`` and appends the loss to ``state.losses``; returns the loss."""
    h = state.hparams
    blur, sharp = data.batch(np.random.default_rng([h["seed"], state.step]), h["batch_size"], h["crop"])
    loss = psnr_loss(forward(blur), sharp)
    if not torch.isfinite(loss):
        raise TrainError(f"loss became {float(loss)} at step {state.step}; lower the learning rate")
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if h["grad_clip"]:
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), h["grad_clip"])
    state.optimizer.step()
    state.scheduler.step()
    state.step += 1
    state.losses.append(float(loss.detach()))
    return state.losses[-1]


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
    out_path = _checked_output(out_path, compiled)
    state_path = state_path_for(out_path)
    data.eligible(crop)  # fail now, not at the first batch
    say = log or (lambda msg: None)
    hparams = dict(batch_size=batch_size, crop=crop, lr=lr, min_lr=min_lr, weight_decay=weight_decay,
                   betas=list(betas), grad_clip=grad_clip, seed=seed, steps=steps,
                   identity_init=identity_init and init_state_dict is None)  # fmt: skip
    with _deterministic_torch(threads):
        state = TrainState.fresh(config, hparams, init_state_dict)
        if resume and state_path.exists():
            state.resume(state_path, say)
        elif state_path.exists():
            say(f"not resuming: {state_path} will be overwritten")
        end = steps if stop_after is None else min(steps, state.step + stop_after)
        start_step, t0 = state.step, time.perf_counter()
        state.model.train()
        forward = torch.compile(state.model) if compiled else state.model
        _run_steps(state, forward, data, end, (val_pairs, val_every, val_crop), save_every, state_path,
                   _bar(steps, state.step, progress), say)  # fmt: skip
        seconds = time.perf_counter() - t0
        finished = state.step >= steps
        if finished:
            if state.step == start_step:  # nothing left to do; make sure the state exists
                state.save(state_path)
            state.model.eval()
            atomic_safetensors(state.model, out_path, half=True)
            say(f"wrote {out_path} (fp16) and {state_path} (fp32 state) after {state.step} steps")
        else:
            say(f"stopped at step {state.step} of {steps}; state in {state_path}")
        return TrainResult(out_path=out_path, state_path=state_path, config=config, step=state.step, steps=steps,
                           finished=finished, losses=state.losses, val_history=state.val_history, seconds=seconds,
                           steps_run=state.step - start_step)  # fmt: skip


def _run_steps(state: TrainState, forward, data: TrainingData, end: int, val: tuple, save_every: int,
               state_path: Path, bar, say: Callable[[str], None]) -> None:  # fmt: skip
    """Steps until ``end``; validation (``val``: pairs, every, crop) every ``val_every`` steps and at the last step,
    the state saved every ``save_every`` steps, at ``end`` and on Ctrl-C (which is then re-raised)."""
    val_pairs, val_every, val_crop = val
    steps, start_step = state.hparams["steps"], state.step
    last_val = state.val_history[-1][1] if state.val_history else None
    try:
        while state.step < end:
            lr = state.optimizer.param_groups[0]["lr"]  # this step's (the progress bar shows it)
            train_step(state, forward, data)
            if val_pairs and (state.step % val_every == 0 or state.step == steps):
                last_val = validation_psnr(state.model, val_pairs, val_crop)
                state.val_history.append((state.step, last_val))
                say(f"step {state.step}: validation PSNR {last_val:.2f} dB")
            if state.step % save_every == 0 or state.step == end:
                state.save(state_path)
            if bar is not None:
                bar.update(1)
                post = {"loss": f"{float(np.mean(state.losses[-20:])):.2f}", "lr": f"{lr:.1e}"}
                if last_val is not None:
                    post["val"] = f"{last_val:.2f}dB"
                bar.set_postfix(post, refresh=False)
    except KeyboardInterrupt:
        if state.step > start_step:
            state.save(state_path)
            say(f"interrupted: state saved at step {state.step} to {state_path}")
        raise
    finally:
        if bar is not None:
            bar.close()


def _checked_output(out_path: str | Path, compiled: bool) -> Path:
    """The output path, checked (and its folder made) before hours of training, not after."""
    if compiled and not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        raise TrainError("--compile needs a C++ compiler (torch.compile builds CPU kernels with it): install g++")
    out_path = Path(out_path)
    if out_path.suffix != ".safetensors":
        raise TrainError(f"output must be a .safetensors file, got {out_path}")
    if out_path.is_dir():
        raise TrainError(f"output {out_path} is a folder")
    check_writable(out_path.parent)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    return out_path


@contextlib.contextmanager
def _deterministic_torch(threads: int | None):
    """Deterministic algorithms (warn only) and ``threads`` threads inside; torch's previous settings after."""
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_det_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with torch_threads(threads):
            yield
    finally:
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
