"""What a training run resumes from: :class:`TrainState` (the fp32 model, AdamW, its cosine schedule, the step, the
RNG and the loss/validation history) and its file ``<out>.state.pt``, written atomically.

The learning rate follows :class:`torch.optim.lr_scheduler.CosineAnnealingLR` from ``lr`` down to ``min_lr`` over
the whole run (``T_max`` = the run's steps, no warm-up). Its state is saved with the rest, so a resumed run gets the
same learning rates as an uninterrupted one.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR

from ..errors import TrainError
from ..io.files import atomic_path, full_disk_as_enospc
from ..models.checkpoint import save_safetensors
from ..models.config import NAFNetConfig
from ..models.reference import NAFNet

STATE_FORMAT = "nafnet_litert.train_state/1"


def state_path_for(out_path: str | Path) -> Path:
    return Path(str(out_path) + ".state.pt")


def atomic_torch_save(obj: object, path: Path) -> None:
    with atomic_path(path) as tmp, full_disk_as_enospc(tmp):
        torch.save(obj, str(tmp))


def atomic_safetensors(model: NAFNet, path: Path, half: bool) -> None:
    with atomic_path(path) as tmp, full_disk_as_enospc(tmp):
        save_safetensors(model, tmp, half=half)


def load_state_file(path: Path) -> dict:
    """The dictionary in a state file; an unreadable or foreign file is a one-line :class:`TrainError`."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, foreign or unsafe file
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise TrainError(f"{path}: unreadable training state ({msg}); delete it to start over") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise TrainError(f"{path}: not a training state written by nafnet-litert; delete it to start over")
    return state


@dataclass
class TrainState:
    """Everything that changes during a run. ``hparams`` are the run's settings as given (saved for the record and
    compared on resume); the schedule is set by its ``lr``, ``min_lr`` and ``steps``."""

    config: NAFNetConfig
    hparams: dict
    model: NAFNet
    optimizer: torch.optim.AdamW
    scheduler: CosineAnnealingLR
    step: int = 0
    losses: list[float] = field(default_factory=list)
    val_history: list[tuple[int, float]] = field(default_factory=list)

    @classmethod
    def fresh(cls, config: NAFNetConfig, hparams: dict, init_state_dict: Mapping[str, torch.Tensor] | None = None):
        """A new run: the model initialised after ``torch.manual_seed(seed)`` (or from ``init_state_dict``; a fresh
        model with ``identity_init`` starts as the identity), AdamW and the cosine schedule at step 0."""
        torch.manual_seed(hparams["seed"])
        model = NAFNet(config)
        if hparams["identity_init"]:  # the last convolution zeroed: with beta/gamma zero, out = input
            with torch.no_grad():
                bias = model.ending.bias
                assert bias is not None, "NAFNet's ending convolution has a bias"
                model.ending.weight.zero_()
                bias.zero_()
        if init_state_dict is not None:
            try:
                model.load_state_dict(dict(init_state_dict), strict=True)
            except RuntimeError as e:
                raise TrainError(f"initial weights do not fit {config.describe()}: {str(e).splitlines()[0]}") from None
        opt = torch.optim.AdamW(model.parameters(), lr=hparams["lr"], betas=tuple(hparams["betas"]),
                                weight_decay=hparams["weight_decay"])  # fmt: skip
        # lr before step s = min_lr + (lr - min_lr) * (1 + cos(pi * s / steps)) / 2. Torch steps it by its recursive
        # ("chainable") form, which drifts from that closed form by rounding only: at most 5.5e-13 relative over
        # 100k steps (1.6e-10 with min_lr 0, near the end), far below float32's 6e-8, and the float32 step sizes
        # AdamW applies were identical to the closed form's at every step of runs of 1 to 100k steps. Its state is
        # saved, so a resumed run follows the same recursion as an uninterrupted one, bit for bit.
        scheduler = CosineAnnealingLR(opt, T_max=hparams["steps"], eta_min=hparams["min_lr"])
        return cls(config, hparams, model, opt, scheduler)

    @property
    def schedule(self) -> dict:
        h = self.hparams
        return {"kind": "cosine", "lr": h["lr"], "min_lr": h["min_lr"], "total": h["steps"]}

    def save(self, path: Path) -> None:
        atomic_torch_save(
            {
                "format": STATE_FORMAT,
                "config": self.config.to_dict(),
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule,
                "scheduler": self.scheduler.state_dict(),
                "step": self.step,
                "torch_rng": torch.get_rng_state(),
                "losses": torch.tensor(self.losses, dtype=torch.float32),
                "val_history": [[s, v] for s, v in self.val_history],
                "hparams": self.hparams,
            },
            path,
        )

    def resume(self, path: Path, say: Callable[[str], None]) -> None:
        """Continue from the state file ``path`` (of the same architecture): weights, optimizer, schedule, step, RNG
        and history. Settings changed since are named; a changed ``lr``, ``min_lr`` or ``steps`` takes effect from
        this step on (the cosine's closed form at this step, with the new values)."""
        state = load_state_file(path)
        saved = NAFNetConfig.from_dict(state["config"])
        if saved != self.config:
            raise TrainError(
                f"{path}: holds a {saved.describe()} run, not {self.config.describe()}; delete it or choose another output"
            )
        self.model.load_state_dict(state["model"], strict=True)
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])
        self.losses = [float(v) for v in state["losses"].tolist()]
        self.val_history = [(int(s), float(v)) for s, v in state["val_history"]]
        if "scheduler" in state and state.get("schedule") == self.schedule:
            self.scheduler.load_state_dict(state["scheduler"])
        else:  # a new schedule (or a state saved before the scheduler was): its closed form at this step
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # step(epoch) is deprecated, and is the closed form
                self.scheduler.step(self.step)
        old = state["hparams"]
        changed = [f"{k} {old.get(k)} -> {v}" for k, v in self.hparams.items() if old.get(k) != v]
        say(f"resumed from {path} at step {self.step}" + (f" (changed: {', '.join(changed)})" if changed else ""))
