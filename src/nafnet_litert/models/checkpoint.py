"""Checkpoint file -> canonical state dict -> detected :class:`NAFNetConfig` -> strictly loaded reference model.

All unwrapping happens in :func:`canonicalize`; all hyperparameters are read from tensor names and shapes in
:func:`detect_config`, so any NAFNet variant loads without a config file.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import CheckpointError
from .config import NAFNetConfig, preset_name
from .reference import NAFNet, build_reference

#: Wrapper keys seen around NAFNet state dicts (BasicSR writes ``params`` and sometimes ``params_ema``).
_WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model", "net_g")


@dataclass
class Checkpoint:
    """A loaded checkpoint: where it came from, its tensors and the architecture they describe."""

    path: Path | None
    state_dict: dict[str, torch.Tensor]
    config: NAFNetConfig
    sha256: str | None = None

    @property
    def name(self) -> str:
        return preset_name(self.config) or "custom"

    def build_reference(self) -> NAFNet:
        return build_reference(self.config, self.state_dict)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``.pth``/``.pt``/``.ckpt`` (safely, ``weights_only=True``) or ``.safetensors`` file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{path.name}: not a readable safetensors file ({_first_line(e)})") from None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        msg = _first_line(e)
        if "weights only" in msg.lower() or "weights_only" in msg.lower():
            raise CheckpointError(
                f"{path.name}: refusing to unpickle code from this file (it needs more than tensors to load; "
                "re-save it as a plain state dict or .safetensors)"
            ) from None
        raise CheckpointError(f"{path.name}: not a PyTorch checkpoint ({msg})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(f"{path.name}: unreadable or truncated checkpoint ({_first_line(e)})") from None
    except Exception as e:  # the unpickler raises KeyError/IndexError/... on arbitrary bytes
        raise CheckpointError(f"{path.name}: not a PyTorch checkpoint ({type(e).__name__}: {_first_line(e)})") from None
    return canonicalize(obj, source=path.name)


def canonicalize(obj: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Unwrap BasicSR/Lightning-style containers and strip DataParallel's ``module.`` prefix."""
    for _ in range(3):
        if isinstance(obj, dict) and not _looks_like_state_dict(obj):
            key = next((k for k in _WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
            if key is None:
                break
            obj = obj[key]
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{source}: does not contain a state dict")
    sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not sd:
        raise CheckpointError(f"{source}: does not contain any tensors")
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def _looks_like_state_dict(d: dict) -> bool:
    return any(isinstance(v, torch.Tensor) for v in d.values())


def _count_children(sd: dict[str, torch.Tensor], prefix: str) -> int:
    """Number of consecutive integer children ``prefix.0``, ``prefix.1``, ... present in the keys."""
    pat = re.compile(re.escape(prefix) + r"\.(\d+)\.")
    found = {int(m.group(1)) for k in sd for m in [pat.match(k)] if m}
    n = 0
    while n in found:
        n += 1
    return n


def detect_config(sd: dict[str, torch.Tensor], source: str = "checkpoint") -> NAFNetConfig:
    """Work out a NAFNet's hyperparameters from its tensor names and shapes."""
    intro = sd.get("intro.weight")
    if intro is None or "ending.weight" not in sd or intro.ndim != 4:
        sample = ", ".join(sorted(sd)[:3])
        raise CheckpointError(
            f"{source}: not a NAFNet checkpoint (no 'intro.weight'/'ending.weight'; first keys: {sample})"
        )
    width, img_channel = int(intro.shape[0]), int(intro.shape[1])
    levels = _count_children(sd, "downs") or sum(1 for k in sd if re.fullmatch(r"downs\.\d+\.weight", k))
    enc = tuple(_count_children(sd, f"encoders.{i}") for i in range(levels))
    dec = tuple(_count_children(sd, f"decoders.{i}") for i in range(levels))
    mid = _count_children(sd, "middle_blks")
    try:
        return NAFNetConfig(img_channel=img_channel, width=width, enc_blocks=enc, middle_blocks=mid, dec_blocks=dec)
    except ValueError as e:
        raise CheckpointError(f"{source}: inconsistent NAFNet layout ({e})") from None


def check_strict(config: NAFNetConfig, sd: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise a one-line :class:`CheckpointError` naming the first missing/unexpected/mis-shaped tensors."""
    expected = NAFNet(config).state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    wrong = [
        f"{k} {tuple(sd[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in sd and tuple(sd[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys, first: {', '.join(missing[:3])}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys, first: {', '.join(unexpected[:3])}")
    if wrong:
        problems.append(f"{len(wrong)} wrong shapes, first: {'; '.join(wrong[:2])}")
    if problems:
        raise CheckpointError(f"{source}: does not match NAFNet {config.describe()}: {' | '.join(problems)}")
    check_values(sd, source)


def check_values(sd: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Every weight a finite floating-point number: integer tensors (which a cast would silently turn into other
    weights) and NaN/inf (what a diverged training run leaves, and what turns every photo black) are refused with
    the tensor's name."""
    for k, v in sd.items():
        if not v.is_floating_point():
            raise CheckpointError(f"{source}: tensor {k} holds {str(v.dtype).replace('torch.', '')} values, "
                                  "not floating-point weights")  # fmt: skip
        bad = int((~torch.isfinite(v)).sum())
        if bad:
            raise CheckpointError(
                f"{source}: tensor {k} has {bad} non-finite value(s) (NaN or inf; a diverged training run?): "
                "use an earlier checkpoint"
            )


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load any NAFNet checkpoint file, detect its architecture and check every tensor strictly."""
    path = Path(path)
    sd = read_state_dict(path)
    config = detect_config(sd, path.name)
    check_strict(config, sd, path.name)  # also refuses integer and non-finite weights
    sd = {k: v.float() for k, v in sd.items()}
    return Checkpoint(path=path, state_dict=sd, config=config, sha256=sha256_file(path))


def checkpoint_from_model(model: NAFNet) -> Checkpoint:
    """Wrap an in-memory reference model (e.g. a randomly initialised one) as a Checkpoint."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return Checkpoint(path=None, state_dict=sd, config=model.config)


def save_safetensors(model_or_sd: NAFNet | dict[str, torch.Tensor], path: str | Path, half: bool = False) -> None:
    """Write a state dict as ``.safetensors`` (optionally fp16), with the config in the metadata."""
    import json

    from safetensors.torch import save_file

    sd = model_or_sd.state_dict() if isinstance(model_or_sd, NAFNet) else model_or_sd
    sd = {k: (v.half() if half else v.float()).contiguous() for k, v in sd.items()}
    config = detect_config(sd)
    save_file(sd, str(path), metadata={"nafnet_config": json.dumps(config.to_dict())})


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


def random_checkpoint(config: NAFNetConfig, seed: int = 0, scale: float = 0.1) -> Checkpoint:
    """A randomly initialised NAFNet whose zero-initialised parameters are made non-zero.

    ``beta``/``gamma`` start at zero in NAFNet, and the converter constant-folds blocks scaled by zero: a test on
    a freshly built network would test an empty graph. Here they (and the LayerNorm affines) get random values, so
    every block is live. Structure-only: such a model does not deblur.
    """
    g = torch.Generator().manual_seed(seed)
    model = NAFNet(config)
    for mod in model.modules():  # deterministic conv init, independent of the global RNG
        if isinstance(mod, torch.nn.Conv2d):
            fan_in = mod.weight[0].numel()
            mod.weight.data = torch.randn(mod.weight.shape, generator=g) / fan_in**0.5
            if mod.bias is not None:
                mod.bias.data = torch.randn(mod.bias.shape, generator=g) * 0.02
    for name, p in model.named_parameters():
        if name.endswith(("beta", "gamma")):
            p.data = torch.randn(p.shape, generator=g) * scale
        elif ".norm" in name and name.endswith("weight"):
            p.data = 1.0 + torch.randn(p.shape, generator=g) * 0.2
        elif ".norm" in name and name.endswith("bias"):
            p.data = torch.randn(p.shape, generator=g) * 0.05
    return checkpoint_from_model(model.eval())


def resolve_checkpoint(spec: str | Path) -> Checkpoint:
    """A checkpoint path, ``default`` (the bundled trained model), ``random:<preset>[@seed]`` for a
    structure-only randomly initialised preset, or ``stress:<any of these>`` for its stressed twin (the same
    function with the residual stream scaled so the bottleneck peaks at |x| = 175, as in trained GoPro-w32; see
    :mod:`.stress`)."""
    from .config import PRESETS
    from .zoo import bundled_path, is_default

    text = str(spec)
    if text.startswith("stress:"):
        from .stress import stressed_twin

        inner = text[len("stress:") :]
        if not inner:
            raise CheckpointError("stress: needs a checkpoint after it, e.g. stress:random:GoPro-width32")
        base = resolve_checkpoint(inner)
        try:
            twin, _k, _peak = stressed_twin(base.build_reference())
        except ValueError as e:
            raise CheckpointError(f"{text}: {e}") from None
        ck = checkpoint_from_model(twin)
        ck.path = base.path
        return ck
    if is_default(text):
        return load_checkpoint(bundled_path())
    if text.startswith("random:"):
        name, _, seed = text[len("random:") :].partition("@")
        if name not in PRESETS:
            raise CheckpointError(f"unknown preset {name!r} in {text!r} (choose from {', '.join(PRESETS)})")
        if seed and not seed.isdigit():
            raise CheckpointError(f"bad seed {seed!r} in {text!r}: use random:{name}@123")
        return random_checkpoint(PRESETS[name], seed=int(seed or 0))
    return load_checkpoint(text)
