"""fp16 headroom of a NAFNet on a given input: how close each activation and each reduction comes to fp16's limits.

A mobile GPU running the graph in fp16 stores every activation in fp16 (max 65504) and accumulates every MEAN in
fp16. :func:`fp16_headroom` runs the fp32 network once with forward hooks and reports, per module:

* ``output``: the largest |activation| it produces; headroom ``65504 / max|y|``.
* For every reduction, the largest magnitude an fp16 accumulator must hold, bounded by ``sum |v|`` over the
  reduced axis of the values actually summed (whatever the order of the additions, no partial sum exceeds it);
  headroom ``65504 / bound``:

  ========================  ==========================================================================
  reference ``LayerNorm2d``  ``sum_mean`` = sum_c |x|, ``sum_var`` = sum_c (x - mu)^2
  ``ScaledLayerNorm2d``      the same on x / S
  global average pooling     ``sum_pool`` = sum over H*W of |x| (one reduction over two axes)
  ``SeparableGlobalMean``    ``sum_pool_w`` = sum over W of |x / S|, then ``sum_pool_h`` = sum over H of
                             |mean_W(x / S)|
  ========================  ==========================================================================

  Verdict: ``ok`` (headroom >= 2), ``tight`` (1 <= headroom < 2) or ``overflow`` (< 1).
* For every LayerNorm, ``var_floor``: the smallest value, over pixels, that the normaliser takes the square root
  of (``var + eps``, or ``var / S^2 + eps / S^2`` in the scaled domain, where ``eps / S^2`` rounds to 0 in fp16).
  Below fp16's smallest normal (2^-14) it is subnormal and loses precision; below 2^-25 it rounds to zero and the
  normalisation divides by zero (inf/NaN). Headroom ``value / 2^-14``; verdict ``ok`` (normal), ``subnormal``
  or ``underflow``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .model.deploy import InterleaveUpsample, ScaledLayerNorm2d, SeparableGlobalMean
from .model.reference import GlobalAvgPool, LayerNorm2d, NAFBlock, NAFNet, SimpleGate, Upsample

FP16_MAX = 65504.0
FP16_MIN_NORMAL = 2.0**-14
FP16_ZERO_BELOW = 2.0**-25  # half the smallest subnormal: anything smaller rounds to 0

OVERFLOW_QUANTITIES = ("output", "sum_mean", "sum_var", "sum_pool", "sum_pool_w", "sum_pool_h")
REDUCTION_QUANTITIES = OVERFLOW_QUANTITIES[1:]
FLOOR_QUANTITY = "var_floor"

_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (nn.Conv2d, "conv"),
    (LayerNorm2d, "layernorm"),
    (ScaledLayerNorm2d, "scaled_layernorm"),
    ((GlobalAvgPool, nn.AdaptiveAvgPool2d), "avgpool"),
    (SeparableGlobalMean, "separable_mean"),
    (SimpleGate, "gate"),
    (NAFBlock, "block"),
    ((Upsample, InterleaveUpsample), "upsample"),
    (nn.PixelShuffle, "pixelshuffle"),
    (NAFNet, "network"),
)


@dataclass
class LayerReport:
    """One quantity of one module call: ``value`` (a max |activation|, an accumulator bound or a variance floor)
    and its fp16 ``headroom`` and ``verdict`` (see the module docstring)."""

    name: str
    kind: str
    quantity: str
    value: float
    headroom: float
    verdict: str

    def to_dict(self) -> dict:
        return asdict(self)


def layer_kind(mod: nn.Module) -> str:
    for types, kind in _KINDS:
        if isinstance(mod, types):
            return kind
    return type(mod).__name__.lower()


def overflow_verdict(headroom: float) -> str:
    return "ok" if headroom >= 2 else "tight" if headroom >= 1 else "overflow"


def _overflow(name: str, kind: str, quantity: str, value: float) -> LayerReport:
    value = float(value)
    headroom = float("inf") if value == 0 else (0.0 if value != value else FP16_MAX / value)  # NaN -> 0
    return LayerReport(name, kind, quantity, value, headroom, overflow_verdict(headroom))


def _floor(name: str, kind: str, value: float) -> LayerReport:
    value = float(value)
    verdict = "ok" if value >= FP16_MIN_NORMAL else "subnormal" if value >= FP16_ZERO_BELOW else "underflow"
    return LayerReport(name, kind, FLOOR_QUANTITY, value, value / FP16_MIN_NORMAL, verdict)


def _maxf(t: torch.Tensor) -> float:
    return float(t.max()) if t.numel() else 0.0


def _reductions(mod: nn.Module, name: str, kind: str, x: torch.Tensor) -> list[LayerReport]:
    """The accumulator bounds (and LayerNorm variance floor) of ``mod`` on input ``x``, computed in float64."""
    x = x.detach().double()
    if isinstance(mod, (LayerNorm2d, ScaledLayerNorm2d)):
        scale = mod.scale if isinstance(mod, ScaledLayerNorm2d) else 1.0
        xs = x / scale
        d = xs - xs.mean(1, keepdim=True)
        var = (d * d).mean(1)
        eps16 = float(torch.tensor(mod.eps / scale**2).to(torch.float16))  # what survives in fp16
        return [
            _overflow(name, kind, "sum_mean", _maxf(xs.abs().sum(1))),
            _overflow(name, kind, "sum_var", _maxf((d * d).sum(1))),
            _floor(name, kind, float((var + eps16).min())),
        ]
    if isinstance(mod, (GlobalAvgPool, nn.AdaptiveAvgPool2d)):
        return [_overflow(name, kind, "sum_pool", _maxf(x.abs().sum((2, 3))))]
    if isinstance(mod, SeparableGlobalMean):
        xs = x / mod.scale
        return [
            _overflow(name, kind, "sum_pool_w", _maxf(xs.abs().sum(3))),
            _overflow(name, kind, "sum_pool_h", _maxf(xs.mean(3).abs().sum(2))),
        ]
    return []


def fp16_headroom(model: NAFNet, x: torch.Tensor) -> list[LayerReport]:
    """Run ``model`` (reference or deploy, fp32) on ``x`` and report every module's fp16 headroom, in call order.

    Modules called more than once (a block's shared ``sg`` gate) get ``#2``, ``#3``... on later calls; the
    network's own output is reported as ``(output)``.
    """
    reports: list[LayerReport] = []
    calls: dict[str, int] = defaultdict(int)
    handles = []

    def hook(name: str, kind: str):
        def fn(mod: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
            calls[name] += 1
            label = name if calls[name] == 1 else f"{name}#{calls[name]}"
            reports.extend(_reductions(mod, label, kind, inputs[0]))
            reports.append(_overflow(label, kind, "output", _maxf(out.detach().abs())))

        return fn

    try:
        for name, mod in model.named_modules():
            if isinstance(mod, (nn.Sequential, nn.ModuleList)):
                continue  # containers repeat their last child's output
            handles.append(mod.register_forward_hook(hook(name or "(output)", layer_kind(mod))))
        with torch.no_grad():
            model(torch.as_tensor(x, dtype=torch.float32))
    finally:
        for h in handles:
            h.remove()
    return reports


def _row(r: LayerReport) -> dict:
    return {"name": r.name, "kind": r.kind, "quantity": r.quantity, "value": r.value, "headroom": r.headroom,
            "verdict": r.verdict}  # fmt: skip


def summarize(reports: list[LayerReport]) -> dict:
    """Worst overflow headroom overall, among reductions and among activations; per kind and per
    ``kind:quantity``; the layers with an overflowing value, and the LayerNorms whose variance underflows."""
    over = [r for r in reports if r.quantity in OVERFLOW_QUANTITIES]
    floors = [r for r in reports if r.quantity == FLOOR_QUANTITY]

    def worst(rs: list[LayerReport]) -> dict | None:
        return _row(min(rs, key=lambda r: r.headroom)) if rs else None

    def grouped(key) -> dict:
        groups: dict[str, list[LayerReport]] = defaultdict(list)
        for r in over:
            groups[key(r)].append(r)
        return {
            k: {**worst(rs), "count": len(rs), "overflow": sum(r.verdict == "overflow" for r in rs),
                "tight": sum(r.verdict == "tight" for r in rs)}
            for k, rs in groups.items()
        }  # fmt: skip

    overflow_layers = sorted({r.name for r in over if r.verdict == "overflow"})
    underflow_layers = sorted({r.name for r in floors if r.verdict == "underflow"})
    worst_all = worst(over)
    return {
        "worst": worst_all,
        "worst_reduction": worst([r for r in over if r.quantity != "output"]),
        "worst_activation": worst([r for r in over if r.quantity == "output"]),
        "worst_floor": _row(min(floors, key=lambda r: r.value)) if floors else None,
        "per_kind": grouped(lambda r: r.kind),
        "per_reduction": grouped(lambda r: f"{r.kind}:{r.quantity}"),
        "overflow_count": len(overflow_layers),
        "overflow_layers": overflow_layers,
        "underflow_count": len(underflow_layers),
        "underflow_layers": underflow_layers,
        "verdict": worst_all["verdict"] if worst_all else "ok",
    }


def format_table(reports: list[LayerReport], top: int = 20) -> str:
    """The ``top`` lowest-headroom overflow entries as a text table, then the worst variance floors and a
    summary line."""
    over = sorted((r for r in reports if r.quantity in OVERFLOW_QUANTITIES), key=lambda r: r.headroom)
    floors = sorted((r for r in reports if r.quantity == FLOOR_QUANTITY), key=lambda r: r.value)
    head = f"{'layer':<28} {'kind':<17} {'quantity':<11} {'value':>11} {'headroom':>10}  verdict"
    lines = [head, "-" * len(head)]
    for r in over[:top]:
        lines.append(
            f"{r.name:<28} {r.kind:<17} {r.quantity:<11} {r.value:>11.4g} {r.headroom:>10.3g}  {r.verdict}"
        )
    bad_floors = [r for r in floors if r.verdict != "ok"]
    for r in bad_floors[: max(3, top // 4)]:
        lines.append(f"{r.name:<28} {r.kind:<17} {r.quantity:<11} {r.value:>11.4g} {r.headroom:>10.3g}  {r.verdict}")
    s = summarize(reports)
    w = s["worst"]
    lines.append(
        f"worst headroom {w['headroom']:.3g} ({w['name']} {w['quantity']}, {w['verdict']}); "
        f"{s['overflow_count']} overflowing layers; {s['underflow_count']} LayerNorms whose variance underflows; "
        f"{len(over)} overflow checks, {len(floors)} variance floors"
        if w
        else "no reports"
    )
    return "\n".join(lines)
