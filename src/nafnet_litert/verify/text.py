"""The plain-text forms of the verify reports: the audit's lines (:func:`format_audit`, one check at a time with
:func:`format_check`, which the HTML report reuses) and the per-op fp16 headroom table
(:func:`format_headroom_table`). Formatting only: no check is decided here.
"""

from __future__ import annotations

import math

_LIMITED_BY = {"output": "largest value", "accumulator": "accumulator bound", "constant": "a constant"}
#: Every check line starts with the check's name padded to this width; continuation lines with as many spaces.
LABEL_WIDTH = 14


# ------------------------------------------------------------------------------------------------ audit
def format_audit(report) -> str:
    """An :class:`~.audit.AuditReport` as aligned text: the model, its signature and op histogram, every check."""
    s = report.static
    lines = [
        f"model         {report.model}  ({s['file_size'] / 1e6:.2f} MB, {s['weight_precision']} weights)",
        f"signature     {_fmt_io(s['io'])}",
        f"nodes         {s['node_count']} ({s['node_count_without_dequantize']} without DEQUANTIZE; "
        f"TRANSPOSE: {s['transpose_count']})",
        "op histogram  " + ", ".join(f"{k} {v}" for k, v in s["op_histogram"].items()),
    ]
    for name, c in report.checks.items():
        lines.extend(format_check(name, c))
    lines.append(f"verdict       {'PASS' if report.passed else 'FAIL'}")
    return "\n".join(lines)


def format_check(name: str, c) -> list[str]:
    """The lines of one :class:`~nafnet_litert.litert.static_audit.Check`, each ending the check with its verdict."""
    d = c.data
    label = f"{name:<13s} "
    pad = " " * LABEL_WIDTH
    if name == "ops":
        return _format_ops(label, pad, c)
    if name == "forms":
        return _format_forms(label, pad, c)
    if name == "io":
        return [label + f"{d['contract']} -> {_verdict(c)}" + (f" ({c.error})" if c.error else "")]
    if name == "rank":
        above = d["ops_above_limit"]
        extra = f" (above: {', '.join(f'{k} x{v}' for k, v in above.items())})" if above else ""
        head = label + f"max tensor rank {d['max_rank']} (limit {d['limit']}){extra} -> {_verdict(c)}"
        return [head, *_rule_line(pad, d)]
    if name == "fp16_headroom":
        return _format_headroom(label, pad, c)
    if c.error and not d.get("images"):
        return [label + f"{c.error} -> {_verdict(c)}"]
    return _format_runs(name, label, pad, c)


def _verdict(c) -> str:
    return "pass" if c.passed else "FAIL"


def _fmt_metrics(m: dict) -> str:
    if not m.get("finite", True):
        return "NON-FINITE output"
    text = f"corr {m['corr']:.7f}, max abs {m['max_abs']:.3g}, PSNR {m['psnr']:.2f} dB"
    if "residual_corr" in m:
        text += f", residual corr {m['residual_corr']:.6f}"
    return text


def _rule_line(pad: str, d: dict) -> list[str]:
    """The rule a failing check names (``data["rule"]``): its name, reason and source, on one line."""
    r = d.get("rule")
    return [pad + f"{r['name']}: {r['reason']} ({r['source']})"] if r else []


def _format_ops(label: str, pad: str, c) -> list[str]:
    d = c.data
    bad = [f"{op} x{v['count']} (rejected on phones: {v['reason']}; {v['source']})" for op, v in d["rejected"].items()]
    if not bad and not d["unproven"]:
        head = "every op phone-proven"
    else:
        parts = [f"{len(bad)} rejected on phones"] if bad else []
        parts += [f"{len(d['unproven'])} unproven on phones"] if d["unproven"] else []
        head = ", ".join(parts)
    out = [label + f"{head} -> {_verdict(c)}"]
    out += [pad + b for b in bad]
    if d["unproven"]:
        note = "allowed by --allow-unproven" if d["allow_unproven"] else "pass --allow-unproven to accept"
        ops = ", ".join(f"{k} x{v}" for k, v in d["unproven"].items())
        out.append(pad + "unproven on phones: " + ops + f" ({note})")
    return out


def _format_forms(label: str, pad: str, c) -> list[str]:
    d = c.data
    reads = d.get("nearest_resizes", [])
    head = "no rejected form" if not d["rejected"] else f"{len(d['rejected'])} rejected form(s)"
    if reads:
        on = sum(r["on_grid"] for r in reads)
        head += f"; nearest resizes read on their stride grid: {on}/{len(reads)}"
    dyn = d.get("dynamic")
    if dyn:
        if dyn.get("error"):
            head += f"; off-grid perturbation: {dyn['error']}"
        else:
            head += (
                f"; off-grid perturbation of {dyn['resizes_perturbed']} resize(s): "
                + ("bit-identical" if dyn["identical"] else f"output CHANGED (max abs {dyn['max_abs']:.3g})")
            )
    out = [label + f"{head} -> {_verdict(c)}"]
    for rule, v in d["rejected"].items():
        nodes = ", ".join(str(n) for n in v["nodes"][:12]) + (" ..." if len(v["nodes"]) > 12 else "")
        out.append(pad + f"{rule} x{v['count']} at nodes {nodes}: {v['reason']} ({v['source']})")
    for form, v in d.get("unproven", {}).items():
        out.append(pad + f"unproven form (not failed): {v['form']} x{v['count']}: {v['note']}")
    return out


def _format_headroom(label: str, pad: str, c) -> list[str]:
    d = c.data
    out = []
    for key in ("weights", "stress"):
        h = d.get(key)
        if h is None:
            continue
        w = h.get("worst") or {}
        f = h.get("worst_floor") or {}
        floor = f" smallest RSQRT/DIV input {f['floor']:.2g} ({f['floor_verdict']})" if f.get("floor") is not None else ""
        out.append(
            label + f"{'stressed twin' if key == 'stress' else 'weights':13s} headroom {w.get('headroom', float('inf')):.3g} "
            f"(op #{w.get('index', '-')} {w.get('op', '')}, {_LIMITED_BY.get(w.get('limited_by') or '', '')});{floor}; "
            f"overflows {h['overflow_count']}, underflows {h['underflow_count']}, non-finite {h['nonfinite_count']}"
            + (f"  [LayerNorm channel deviation {d['stress_peak']:.0f} at every level]" if key == "stress" else "")
        )  # fmt: skip
        label = pad
    if d.get("note"):
        out.append(label + d["note"])
    out[-1] += f" -> {_verdict(c)}"
    return out + _rule_line(pad, d)


def _format_runs(name: str, label: str, pad: str, c) -> list[str]:
    """parity_cpu, gpu_fp32 and gpu_fp16: one line per image, then gpu_fp16's fp16 evidence."""
    d = c.data
    out = []
    for img in d.get("images", []):
        acc = ""
        if "fully_accelerated" in d:
            acc = f"; fully accelerated: {'yes' if d['fully_accelerated'] else 'NO'}"
        truth = d.get("truth", "PyTorch")
        text = f"{img['image']}: vs {truth} {_fmt_metrics(img['vs_reference'])}"
        if "vs_cpu" in img and truth == "PyTorch":
            text += f"; vs CPU max abs {img['vs_cpu']['max_abs']:.3g}"
        if "int8_twin" in img:
            t = img["int8_twin"]
            text += f"; its int8 twin (PyTorch) PSNR {t['psnr']:.2f} dB, max abs {t['max_abs']:.3g}"
        out.append(label + text + acc)
        label = pad
    if name == "gpu_fp16":
        ex = d.get("fp16_exercised")
        diff = d.get("diff_vs_gpu_fp32", 0)
        out.append(label + f"fp16 exercised: {'yes' if ex else 'NO'} (max |fp16 - fp32 pass| {diff:.3g})")
        if c.error:
            out.append(label + c.error)
        if d.get("hint"):
            out.append(label + d["hint"])
    if out:
        out[-1] += f" -> {_verdict(c)}"
    return out + _rule_line(pad, d)


def _fmt_io(io: dict) -> str:
    def one(t: dict) -> str:
        return f"{t['name']} {t['shape']} {t['dtype'].lower()}"

    return " ; ".join(one(t) for t in io["inputs"]) + " -> " + " ; ".join(one(t) for t in io["outputs"])


# ------------------------------------------------------------------------------------------------ headroom
def format_headroom_table(report, top: int = 20) -> str:
    """A :class:`~.headroom.HeadroomReport`'s ``top`` rows with the least headroom, then every floor that is not
    ``ok``, as aligned text."""
    r0 = report
    lines = [
        f"{r0.model}: {len(r0.rows)} ops, {r0.overflow_count} overflow, {r0.tight_count} tight, "
        f"{r0.underflow_count} underflow, {r0.subnormal_count} subnormal, {r0.nonfinite_count} non-finite"
        f" -> {'PASS' if r0.passed else 'FAIL'} ({r0.seconds:.1f} s)"
    ]
    head = f"{'#':>5}  {'op':<18} {'max|out|':>10} {'bound':>10} {'headroom':>9}  {'verdict':<8} {'by':<11} output"
    lines += ["", head]
    for r in r0.tightest(top):
        bound = "" if r.bound is None else _num(r.bound)
        flag = "" if r.finite else " [NaN]" if r.nan and not r.inf else " [inf]"
        lines.append(
            f"{r.index:>5}  {r.op:<18} {_num(r.max_abs):>10} {bound:>10} {_num(r.headroom):>9}  "
            f"{r.verdict:<8} {r.limited_by:<11} {_short(r.output)}{flag}"
        )
    floors = sorted((r for r in r0.rows if r.floor is not None), key=lambda r: r.floor)
    shown = [r for r in floors if r.floor_verdict != "ok"] or floors[:3]
    if shown:
        lines += ["", f"{'#':>5}  {'op':<18} {'min|den|':>10}  verdict    output"]
        for r in shown[:top]:
            lines.append(f"{r.index:>5}  {r.op:<18} {_num(r.floor):>10}  {r.floor_verdict:<10} {_short(r.output)}")
    lines += [f"note: {n}" for n in r0.notes]
    return "\n".join(lines)


def _num(v: float) -> str:
    if v is None:
        return ""
    if math.isinf(v) or math.isnan(v):
        return str(v)
    return f"{v:.4g}"


def _short(name: str, width: int = 70) -> str:
    return name if len(name) <= width else "..." + name[-(width - 3) :]


__all__ = ["LABEL_WIDTH", "format_audit", "format_check", "format_headroom_table"]
