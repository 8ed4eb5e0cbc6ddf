"""The self-contained HTML audit report (``nafnet-litert audit ... --report audit.html``).

It shows every check of :class:`~nafnet_litert.verify.audit.AuditReport` on the shipped file, the per-op fp16 headroom
of the file's own tensors, and, with ``--gpu``, the fp16 GPU output of our file beside the fp16 GPU output of a
straight litert-torch conversion of the same checkpoint (:func:`straight_comparison`). Every image (base64) and
chart (SVG) is inlined, so it is one file that opens anywhere.
"""

from __future__ import annotations

import base64
import html
import io
import math
import tempfile
from pathlib import Path

import numpy as np

from ..litert.sidecar import Sidecar
from .text import LABEL_WIDTH, format_check


def straight_comparison(model_path, reference, report, threads: int = 2) -> dict | None:
    """Export a straight litert-torch conversion of ``reference`` like ``model_path`` (same size, precision and
    layout, no rewrite), run it on the GPU accelerator in fp16 on the audit's first photo, and return its output
    beside ours for the report (``report``: the :class:`~nafnet_litert.verify.audit.AuditReport`, whose input and
    reference output are reused). None when the model has no sidecar saying how it was exported."""
    from ..litert.convert import export
    from ..litert.sidecar import read_sidecar
    from .parity import parity_metrics, run_backend
    from .stressed_export import export_options

    opts = export_options(read_sidecar(model_path))
    if opts is None:
        return None
    x, ref = report.first_outputs["input"], report.first_outputs["reference"]
    with tempfile.TemporaryDirectory(prefix="nafnet-litert-straight-") as tmp:
        path = Path(tmp) / "straight.tflite"
        export(reference, path, size=opts["size"], precision=opts["precision"], layout=opts["layout"], straight=True)
        run = run_backend(path, [x], "gpu", threads, "fp16")
    if run.error:
        return {"error": run.error}
    out = run.outputs[0]
    return {"output": out, "metrics": parity_metrics(out, ref, x), "fully_accelerated": run.fully_accelerated}


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


def _hwc(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x, np.float32)[0].transpose(1, 2, 0)
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a


def _residual_panel(out: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """|out - ref| x 10, non-finite pixels red."""
    d = np.abs(_hwc(out).astype(np.float64) - _hwc(ref))
    bad = ~np.isfinite(d).all(axis=2)
    img = np.clip(np.nan_to_num(d * RESIDUAL_GAIN, nan=0, posinf=1), 0, 1)
    img[bad] = (1.0, 0.0, 0.0)
    return img


RESIDUAL_GAIN = 10.0


def _check_rows(report) -> str:
    esc = html.escape
    rows = ["<table><tr><th>check</th><th>result</th><th>numbers</th></tr>"]
    for name, c in report.checks.items():
        text = "\n".join(line[LABEL_WIDTH:] for line in format_check(name, c))
        rows.append(
            f"<tr><td>{esc(name)}</td><td class='{'pass' if c.passed else 'fail'}'>{'pass' if c.passed else 'FAIL'}"
            f"</td><td><pre>{esc(text)}</pre></td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _outputs_section(report, straight: dict | None) -> list[str]:
    """The first photo through every backend (and the straight conversion), their residuals and the numbers."""
    esc = html.escape
    fo = report.first_outputs
    if "reference" not in fo:
        return []
    parts = []
    name = report.images[0] if report.images else "photo"
    panels = [("input", _hwc(fo["input"])), ("PyTorch reference", _hwc(fo["reference"]))]
    for key, label in (("cpu", "LiteRT CPU"), ("gpu_fp32", "GPU fp32"), ("gpu_fp16", "GPU fp16 (ours)")):
        if key in fo:
            panels.append((label, _hwc(fo[key])))
    if straight and "output" in straight:
        panels.append(("GPU fp16, straight conversion", _hwc(straight["output"])))
    parts.append(f"<h2>Outputs on {esc(name)}</h2>")
    parts.append(" ".join(f"<figure>{_img_tag(np.clip(a, 0, 1), lbl, 256)}<figcaption>{esc(lbl)}</figcaption></figure>"
                          for lbl, a in panels))  # fmt: skip
    if "gpu_fp16" in fo:
        diffs = [("|GPU fp16 (ours) - reference| x10", _residual_panel(fo["gpu_fp16"], fo["reference"]))]
        if straight and "output" in straight:
            diffs.append(("|straight fp16 - reference| x10", _residual_panel(straight["output"], fo["reference"])))
        parts.append(" ".join(f"<figure>{_img_tag(a, lbl, 256)}<figcaption>{esc(lbl)}</figcaption></figure>"
                              for lbl, a in diffs))  # fmt: skip
    if straight:
        if "error" in straight:
            parts.append(f"<p>Straight conversion on the GPU: {esc(straight['error'])}</p>")
        else:
            m = straight["metrics"]
            ours = report.checks.get("gpu_fp16")
            om = ours.data["images"][0]["vs_reference"] if ours and ours.data.get("images") else None
            parts.append(
                "<h3>fp16 GPU: ours vs a straight litert-torch conversion of the same checkpoint</h3><table>"
                "<tr><th>model</th><th>corr</th><th>residual corr</th><th>max abs</th><th>PSNR dB</th></tr>"
                + (f"<tr><td>ours</td><td>{om['corr']:.7f}</td><td>{om['residual_corr']:.6f}</td>"
                   f"<td>{om['max_abs']:.3g}</td><td>{om['psnr']:.2f}</td></tr>" if om and om.get("finite") else "")
                + f"<tr><td>straight</td><td>{m['corr']:.7f}</td><td>{m['residual_corr']:.6f}</td>"
                f"<td>{m['max_abs']:.3g}</td><td>{m['psnr']:.2f}</td></tr></table>"
            )  # fmt: skip
    return parts


def _headroom_section(report) -> list[str]:
    """The 25 tightest ops of each fp16 headroom measurement, as log-scale bars."""
    parts = []
    for key, h in report.headroom.items():
        rows = sorted(h.to_dict()["rows"], key=lambda r: r.get("headroom", float("inf")))[:25]
        parts.append(f"<h3>fp16 headroom of the file's own tensors, {'stressed twin (|x| ~ 175)' if key == 'stress' else 'checkpoint weights'}:"
                     " 25 tightest ops (65504 / largest value or accumulator bound; log scale, left of the red line ="
                     " overflow)</h3>")  # fmt: skip
        parts.append(_bar_svg([(f"#{r['index']} {r['op']} {r.get('quantity', '')}", max(float(r["headroom"]), 1e-6),
                                _VERDICT_COLOUR.get(r.get("verdict", "ok"), "#47a")) for r in rows], log=True))  # fmt: skip
    return parts


def render_html(report, sidecar: Sidecar | None = None, straight: dict | None = None) -> str:
    """One self-contained HTML page from an :class:`~nafnet_litert.verify.audit.AuditReport` (and the straight
    conversion's fp16 GPU run from :func:`straight_comparison`, when there is one)."""
    s = report.static
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>nafnet-litert audit: "
        f"{esc(report.model)}</title><style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}"
        "img{max-width:100%}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;"
        "vertical-align:top}pre{margin:0;white-space:pre-wrap}figure{display:inline-block;margin:4px}"
        ".pass{color:#080;font-weight:bold}.fail{color:#c00;font-weight:bold}</style></head><body>",
        f"<h1>Audit of {esc(report.model)}</h1>",
        f"<p class='{'pass' if report.passed else 'fail'}' id='verdict'>Verdict: {'PASS' if report.passed else 'FAIL'}"
        "</p><h2>Model</h2><table>",
    ]
    rows = [
        ("file size", f"{s['file_size'] / 1e6:.2f} MB"),
        ("weights", s["weight_precision"]),
        ("nodes", f"{s['node_count']} ({s['node_count_without_dequantize']} without DEQUANTIZE; TRANSPOSE {s['transpose_count']})"),
        ("max tensor rank", str(s["max_rank"])),
        ("rejected on phones", ", ".join(list(s["rejected_ops"]) + list(s["rejected_forms"])) or "none"),
        ("unproven on phones", ", ".join(list(s["unproven_ops"]) + list(s.get("unproven_forms", {}))) or "none"),
        ("input", f"{s['io']['inputs'][0]['name']} {s['io']['inputs'][0]['shape']}"),
        ("output", f"{s['io']['outputs'][0]['name']} {s['io']['outputs'][0]['shape']}"),
    ]  # fmt: skip
    if sidecar is not None:
        rows.insert(0, ("architecture", sidecar.architecture or ""))
    parts += [f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in rows] + ["</table>"]
    parts.append("<h2>Checks</h2>" + _check_rows(report))
    parts.append("<h2>Op histogram (red: rejected on phones, orange: unproven)</h2>")
    colour = {"rejected": "#c22", "unproven": "#e90", "proven": "#47a"}
    from ..litert.device_ops import classify

    parts.append(_bar_svg([(k, float(v), colour[classify(k)]) for k, v in s["op_histogram"].items()]))
    parts += _outputs_section(report, straight)
    parts += _headroom_section(report)
    parts.append("<p><small>nafnet-litert audit report</small></p></body></html>")
    return "\n".join(parts)


def write_html(path: str | Path, text: str) -> None:
    from ..io.files import atomic_write_text

    atomic_write_text(path, text)
