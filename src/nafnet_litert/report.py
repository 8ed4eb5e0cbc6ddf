"""fp16 audit and the self-contained HTML audit report (``nafnet-litert audit ... --fp16 --report audit.html``).

The fp16 audit measures, on a real photo, the per-layer fp16 headroom of the reference and the deploy network
with the checkpoint's own weights and with stress weights (bottleneck residual stream driven to |x| ~ 175, as
in trained GoPro-w32; see :func:`nafnet_litert.fp16.stress_checkpoint`), and saves the fp16-emulation evidence.
The report inlines every image (base64) and chart (SVG), so it is one file that opens anywhere.
"""

from __future__ import annotations

import base64
import html
import io
import math
import tempfile
from pathlib import Path

import numpy as np


def fp16_audit(ckpt, image: str | Path, size: int = 256, stress_target: float = 175.0) -> dict:
    """Headroom (real weights and stress weights, reference vs deploy) and fp16 emulation evidence."""
    from .fp16 import fp16_evidence, photo_tensor, stress_checkpoint
    from .fp16_headroom import fp16_headroom, summarize
    from .model.deploy import to_deploy

    x = photo_tensor(image, size)
    out: dict = {"image": Path(image).name, "size": size}
    stress = stress_checkpoint(ckpt.config, target=stress_target, image=image)
    for label, ck in (("weights", ckpt), ("stress", stress)):
        ref = ck.build_reference()
        res = {}
        for name, net in (("reference", ref), ("deploy", to_deploy(ref))):
            reports = fp16_headroom(net, x)
            s = summarize(reports)
            res[name] = {
                "worst_reduction": s["worst_reduction"],
                "overflow_count": s["overflow_count"],
                "underflow_count": s["underflow_count"],
                "layers": [r.to_dict() for r in reports if r.quantity != "output"],
            }
        out[label] = res
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "fp16.png"
        ev = fp16_evidence(stress, image, png, size=size)
        out["evidence"] = {k: v for k, v in ev.items() if k != "png"}
        out["evidence_png"] = base64.b64encode(png.read_bytes()).decode()
    dep_ok = all(out[k]["deploy"]["overflow_count"] == 0 and out[k]["deploy"]["underflow_count"] == 0
                 for k in ("weights", "stress"))  # fmt: skip
    emu = out["evidence"]["deploy_fp16"]
    out["passed"] = bool(dep_ok and emu["finite"] and emu["corr"] >= 0.999)
    return out


def format_fp16_text(f: dict) -> str:
    lines = []
    for label in ("weights", "stress"):
        for name in ("reference", "deploy"):
            r = f[label][name]
            w = r["worst_reduction"]
            lines.append(
                f"fp16 {label:8s} {name:9s} worst reduction headroom {w['headroom']:.3g} ({w['name']} {w['quantity']}), "
                f"overflowing layers {r['overflow_count']}, underflowing {r['underflow_count']}"
            )
    ev = f["evidence"]
    for k in ("reference_fp16", "deploy_fp16"):
        m = ev[k]
        lines.append(
            f"fp16 emulated {k.split('_')[0]:9s} (stress, |x| {ev['bottleneck_max_abs']:.0f}): "
            f"corr vs fp32 {m['corr']:.5f}, finite: {'yes' if m['finite'] else 'NO'}"
        )
    lines.append(f"fp16 verdict  {'PASS' if f['passed'] else 'FAIL'}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- HTML
def _img_tag(arr_or_b64, alt: str, width: int | None = None) -> str:
    if isinstance(arr_or_b64, str):
        b64 = arr_or_b64
    else:
        from PIL import Image

        a = np.round(np.clip(arr_or_b64, 0, 1) * 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG")
        b64 = base64.b64encode(buf.getvalue()).decode()
    w = f' width="{width}"' if width else ""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}"{w}>'


def _bar_svg(items: list[tuple[str, float, str]], width: int = 760, bar_h: int = 14, log: bool = False) -> str:
    """Horizontal bars: (label, value, colour). ``log``: bar length is log10(value) (values > 0)."""
    if not items:
        return ""
    vals = [math.log10(max(v, 1e-6)) if log else v for _, v, _ in items]
    lo = min(0.0, min(vals))
    hi = max(vals) if max(vals) > lo else lo + 1
    label_w, h = 300, (bar_h + 3) * len(items) + 20
    rows = []
    for i, ((label, v, colour), sv) in enumerate(zip(items, vals)):
        y = 10 + i * (bar_h + 3)
        x0 = label_w + (0 - lo) / (hi - lo) * (width - label_w - 80)
        x1 = label_w + (sv - lo) / (hi - lo) * (width - label_w - 80)
        rows.append(
            f'<text x="{label_w - 6}" y="{y + bar_h - 3}" text-anchor="end" font-size="11">{html.escape(label)}</text>'
            f'<rect x="{min(x0, x1):.1f}" y="{y}" width="{abs(x1 - x0):.1f}" height="{bar_h}" fill="{colour}"/>'
            f'<text x="{max(x0, x1) + 4:.1f}" y="{y + bar_h - 3}" font-size="11">{v:.3g}</text>'
        )
    if log and lo < 0 < hi:
        x = label_w + (0 - lo) / (hi - lo) * (width - label_w - 80)
        rows.append(f'<line x1="{x:.1f}" y1="5" x2="{x:.1f}" y2="{h - 5}" stroke="#c00" stroke-dasharray="4"/>')
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}">{"".join(rows)}</svg>'


_VERDICT_COLOUR = {"ok": "#3a7", "tight": "#e90", "overflow": "#c22", "subnormal": "#e90", "underflow": "#c22"}


def render_html(report, fp16: dict | None = None, before_after: tuple | None = None, sidecar: dict | None = None) -> str:
    """One self-contained HTML page from an :class:`~nafnet_litert.audit.AuditReport` and optional parts."""
    s = report.static
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>nafnet-litert audit: "
        f"{esc(report.model)}</title><style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}"
        "img{max-width:100%}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
        ".pass{color:#080;font-weight:bold}.fail{color:#c00;font-weight:bold}</style></head><body>",
        f"<h1>Audit of {esc(report.model)}</h1>",
        f"<p class='{'pass' if report.passed else 'fail'}' id='verdict'>Verdict: {'PASS' if report.passed else 'FAIL'}"
        "</p><h2>Model</h2><table>",
    ]
    rows = [
        ("file size", f"{s['file_size'] / 1e6:.2f} MB"),
        ("weights", s["weight_precision"]),
        ("nodes", f"{s['node_count']} (TRANSPOSE {s['transpose_count']})"),
        ("max tensor rank", str(s["max_rank"])),
        ("banned ops", ", ".join(s["banned_ops"]) or "none"),
        ("GPU-clean", "yes" if s["gpu_clean"] else "NO"),
        ("input", f"{s['io']['inputs'][0]['name']} {s['io']['inputs'][0]['shape']}"),
        ("output", f"{s['io']['outputs'][0]['name']} {s['io']['outputs'][0]['shape']}"),
    ]
    if sidecar:
        rows.insert(0, ("architecture", sidecar.get("architecture", "")))
    parts += [f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in rows] + ["</table>"]
    parts.append("<h2>Op histogram</h2>")
    parts.append(_bar_svg([(k, float(v), "#c22" if k in s["banned_ops"] else "#47a") for k, v in s["op_histogram"].items()]))
    if report.parity:
        parts.append("<h2>Residency and parity vs the PyTorch reference</h2><table><tr><th>backend</th><th>image</th>"
                     "<th>fully accelerated</th><th>corr</th><th>max abs</th><th>PSNR dB</th><th>result</th></tr>")  # fmt: skip
        for p in report.parity:
            m = p.metrics
            acc = "n/a" if p.fully_accelerated is None else ("yes" if p.fully_accelerated else "NO")
            parts.append(
                f"<tr><td>{esc(p.backend)}</td><td>{esc(p.image)}</td><td>{acc}</td><td>{m['corr']:.8f}</td>"
                f"<td>{m['max_abs']:.3g}</td><td>{m['psnr']:.2f}</td>"
                f"<td class='{'pass' if p.passed else 'fail'}'>{'pass' if p.passed else 'FAIL'}</td></tr>"
            )
        parts.append("</table>")
    if fp16:
        parts.append(f"<h2>fp16 headroom (65504 / largest accumulator bound) on {esc(fp16['image'])}</h2>")
        parts.append("<table><tr><th>weights</th><th>network</th><th>worst reduction headroom</th><th>where</th>"
                     "<th>overflowing layers</th><th>underflowing</th></tr>")  # fmt: skip
        for label in ("weights", "stress"):
            for name in ("reference", "deploy"):
                r = fp16[label][name]
                w = r["worst_reduction"]
                parts.append(
                    f"<tr><td>{'checkpoint' if label == 'weights' else 'stress |x|~175'}</td><td>{name}</td>"
                    f"<td>{w['headroom']:.3g}</td><td>{esc(w['name'])} {esc(w['quantity'])}</td>"
                    f"<td>{r['overflow_count']}</td><td>{r['underflow_count']}</td></tr>"
                )
        parts.append("</table>")
        for name in ("reference", "deploy"):
            layers = [ly for ly in fp16["stress"][name]["layers"] if ly["quantity"].startswith("sum")]
            layers = sorted(layers, key=lambda ly: ly["headroom"])[:25]
            parts.append(f"<h3>Per-layer headroom under stress weights: {name} (25 tightest, log scale; "
                         "left of the red line = overflow)</h3>")  # fmt: skip
            parts.append(_bar_svg([(f"{ly['name']} {ly['quantity']}", ly["headroom"],
                                    _VERDICT_COLOUR.get(ly["verdict"], "#47a")) for ly in layers], log=True))  # fmt: skip
        ev = fp16["evidence"]
        parts.append("<h2>fp16 emulation (every tensor fp16, reductions accumulated sequentially in fp16)</h2>")
        parts.append(
            f"<p>Stress weights, bottleneck |x| = {ev['bottleneck_max_abs']:.0f}. Reference: corr "
            f"{ev['reference_fp16']['corr']:.4f}, finite {ev['reference_fp16']['finite']}; deploy: corr "
            f"{ev['deploy_fp16']['corr']:.5f}, finite {ev['deploy_fp16']['finite']}.</p>"
        )
        parts.append(_img_tag(fp16["evidence_png"], "fp16 emulation evidence"))
    if before_after:
        before, after, name = before_after
        parts.append(f"<h2>Before / after on a real photo ({esc(name)}, LiteRT CPU)</h2>")
        parts.append(_img_tag(before, "before", 400) + " " + _img_tag(after, "after", 400))
    parts.append("<p><small>nafnet-litert audit report</small></p></body></html>")
    return "\n".join(parts)


def write_html(path: str | Path, text: str) -> None:
    from .fileutil import atomic_write_text

    atomic_write_text(path, text)
