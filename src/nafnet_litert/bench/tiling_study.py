"""Choose the tile overlap from measurements (not a test):

    nafnet-litert tiling-study --data ../shared/data/gopro_frames [--model default] [--tile 256]

For each overlap, on every blur/sharp pair: PSNR of the tiled output vs the sharp frame, PSNR vs the whole-image
output of the same network (how far tiling moves the result), and a seam metric: the mean absolute difference
between neighbouring pixels across tile borders divided by the same across all other pixel boundaries (1.0 = a
border looks like anywhere else; the whole-image output's value on the same lines is printed for reference).
Everything runs through the package's one Restorer with the PyTorch backend (LiteRT computes the same to ~1e-5,
see the audit).
"""

from __future__ import annotations


import numpy as np


def seam_ratio(img: np.ndarray, ys: list[int], xs: list[int], tile: int) -> float:
    """Mean |step| across tile-border lines / mean |step| across all other lines (both axes)."""
    dx = np.abs(np.diff(img, axis=1)).mean(axis=(0, 2))  # step between column j and j+1
    dy = np.abs(np.diff(img, axis=0)).mean(axis=(1, 2))
    bx = sorted({x - 1 for x in xs if x > 0} | {x + tile - 1 for x in xs if x + tile < img.shape[1]})
    by = sorted({y - 1 for y in ys if y > 0} | {y + tile - 1 for y in ys if y + tile < img.shape[0]})
    mx = np.zeros(dx.shape, bool)
    mx[bx] = True
    my = np.zeros(dy.shape, bool)
    my[by] = True
    border = np.concatenate([dx[mx], dy[my]])
    other = np.concatenate([dx[~mx], dy[~my]])
    return float(border.mean() / other.mean()) if border.size else 1.0


def study(data: str, model: str = "default", tile: int = 256, overlaps=(0, 16, 32, 64, 96), threads: int = 2):
    from ..models.checkpoint import resolve_checkpoint
    from ..io.image import load_image
    from ..metrics import psnr, to_uint8
    from ..restore import Restorer
    from ..restore.tiling import positions
    from ..io.datasets import find_pairs

    ckpt = resolve_checkpoint(model)
    rows = []
    cache = []
    with Restorer(ckpt, backend="torch", full_frame=True, tlc=False, threads=threads) as whole_net:
        for p in find_pairs(data):
            blur, sharp = load_image(p.blur_path), load_image(p.sharp_path)
            cache.append((p.name, blur, to_uint8(sharp), whole_net(blur)))
    for ov in overlaps:
        r = {"overlap": ov, "psnr_vs_sharp": [], "psnr_vs_whole": [], "seam": [], "seam_whole": []}
        with Restorer(ckpt, backend="torch", tile=tile, overlap=ov, threads=threads) as tiled:
            for name, blur, sharp_u8, whole in cache:
                out = tiled(blur)
                ys, xs = positions(blur.shape[0], tile, ov), positions(blur.shape[1], tile, ov)
                r["psnr_vs_sharp"].append(psnr(to_uint8(out), sharp_u8))
                r["psnr_vs_whole"].append(psnr(to_uint8(out), to_uint8(whole)))
                r["seam"].append(seam_ratio(np.clip(out, 0, 1), ys, xs, tile))
                r["seam_whole"].append(seam_ratio(np.clip(whole, 0, 1), ys, xs, tile))
        rows.append({k: (float(np.mean(v)) if isinstance(v, list) else v) for k, v in r.items()})
    whole_psnr = float(np.mean([psnr(to_uint8(w), s) for _, _, s, w in cache]))
    blur_psnr = float(np.mean([psnr(to_uint8(b), s) for _, b, s, _ in cache]))
    return {"tile": tile, "images": len(cache), "blur_psnr": blur_psnr, "whole_psnr": whole_psnr, "rows": rows}


def format_table(res: dict) -> str:
    out = [
        f"tile {res['tile']}, {res['images']} images; blurry input {res['blur_psnr']:.2f} dB, "
        f"whole-image output {res['whole_psnr']:.2f} dB",
        "| overlap | PSNR vs sharp | PSNR vs whole-image | seam ratio (tiled) | seam ratio (whole, same lines) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        out.append(
            f"| {r['overlap']} | {r['psnr_vs_sharp']:.3f} | {r['psnr_vs_whole']:.2f} | {r['seam']:.4f} | "
            f"{r['seam_whole']:.4f} |"
        )
    return "\n".join(out)
