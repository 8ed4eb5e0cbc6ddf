"""Deblur any H x W with a fixed-size model: overlapping tiles blended with a smooth window, streamed in bands.

* **Positions.** The fewest tiles per axis whose overlaps are all at least ``overlap``, spread evenly from edge
  to edge: every pixel is covered and no tile reaches outside the image.
* **Blending.** Each tile's output is weighted by a separable window that is 1 in its interior and ramps
  smoothly (raised cosine) across the ``overlap`` pixels it shares with a neighbour; at the image border there is
  no ramp. Weights are normalised by their sum, so a constant image stays constant and seams vanish.
* **Border padding.** An image smaller than the tile is reflect-padded up to the tile size (and cropped back):
  reflection continues the local image statistics, where zeros would add an artificial dark edge that a
  deblurring network treats as structure and that pulls the tile's global channel-attention statistics.
* **Memory.** Tiles are processed row of tiles by row of tiles; a band of ``tile`` rows of float accumulators is
  kept, and finished rows are written into the output array in its own dtype. Peak memory is the input and
  output images plus O(tile x width), never a float copy of the whole image.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from ..photo import from_float, to_float


#: Restores a batch of tiles: float32 [N, C, t, t] -> float32 [N, C, t, t].
TileFn = Callable[[np.ndarray], np.ndarray]


def positions(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles along one axis (``length >= tile``)."""
    if overlap < 0 or overlap >= tile:
        raise ValueError(f"overlap must be in [0, tile), got {overlap} for tile {tile}")
    if length <= tile:
        return [0]
    n = -(-(length - overlap) // (tile - overlap))  # fewest tiles whose overlaps are all >= ``overlap``
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def ramp_window(tile: int, left: int, right: int) -> np.ndarray:
    """1-D weights: raised-cosine ramps of ``left``/``right`` pixels at the two ends, 1 in between (> 0)."""
    w = np.ones(tile, np.float64)
    for n, sl in ((left, slice(0, left)), (right, slice(tile - right, tile))):
        if n > 0:
            r = 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)
            w[sl] = r if sl.start == 0 else r[::-1]
    return w


def _axis_windows(starts: list[int], tile: int, length: int) -> list[np.ndarray]:
    wins = []
    for i, s in enumerate(starts):
        left = (starts[i - 1] + tile - s) if i > 0 else 0
        right = (s + tile - starts[i + 1]) if i + 1 < len(starts) else 0
        wins.append(ramp_window(tile, max(0, left), max(0, right)))
    return wins


def tiled_restore(
    image: np.ndarray,
    fn: TileFn,
    tile: int,
    overlap: int = 32,
    batch: int = 1,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Restore ``image`` (H x W x C; uint8, uint16 or float in [0, 1]) tile by tile; returns the same dtype.

    ``fn`` runs the model on a batch of NCHW float32 tiles; ``progress`` is called with the number of tiles done.
    """
    if image.ndim != 3:
        raise ValueError(f"expected H x W x C, got {image.shape}")
    h0, w0, c = image.shape
    pad_h, pad_w = max(0, tile - h0), max(0, tile - w0)
    src = image
    if pad_h or pad_w:
        mode = "reflect" if (h0 > pad_h and w0 > pad_w) else "symmetric"
        src = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode=mode)
    h, w = src.shape[:2]
    ys, xs = positions(h, tile, overlap), positions(w, tile, overlap)
    wy, wx = _axis_windows(ys, tile, h), _axis_windows(xs, tile, w)
    out = np.empty((h0, w0, c), image.dtype)

    band_top = 0  # first image row held in the accumulator band
    acc = np.zeros((tile + (ys[1] - ys[0] if len(ys) > 1 else 0), w, c), np.float64)
    wsum = np.zeros((acc.shape[0], w), np.float64)

    def tiles_of_row(y: int) -> Iterator[list[int]]:
        for k in range(0, len(xs), batch):
            yield list(range(k, min(k + batch, len(xs))))

    for iy, y in enumerate(ys):
        # grow/shift the band so that rows [y, y + tile) are inside it
        if y + tile - band_top > acc.shape[0]:
            need = y + tile - band_top
            acc = np.concatenate([acc, np.zeros((need - acc.shape[0], w, c))], axis=0)
            wsum = np.concatenate([wsum, np.zeros((need - wsum.shape[0], w))], axis=0)
        for idx in tiles_of_row(y):
            crops = np.stack([to_float(src[y : y + tile, xs[i] : xs[i] + tile]).transpose(2, 0, 1) for i in idx])
            res = np.asarray(fn(np.ascontiguousarray(crops)), np.float32)
            for j, i in enumerate(idx):
                wgt = np.outer(wy[iy], wx[i])
                acc[y - band_top : y - band_top + tile, xs[i] : xs[i] + tile] += res[j].transpose(1, 2, 0) * wgt[..., None]
                wsum[y - band_top : y - band_top + tile, xs[i] : xs[i] + tile] += wgt
            if progress:
                progress(len(idx))
        # rows above the next tile row's start are final
        done_to = ys[iy + 1] if iy + 1 < len(ys) else h
        n = done_to - band_top
        if n > 0:
            rows = acc[:n] / wsum[:n, :, None]
            lo, hi = band_top, min(done_to, h0)
            if hi > lo:
                out[lo:hi] = from_float(rows[: hi - lo, :w0], image.dtype)
            acc = np.concatenate([acc[n:], np.zeros((n, w, c))], axis=0)
            wsum = np.concatenate([wsum[n:], np.zeros((n, w))], axis=0)
            band_top = done_to
    return out


def count_tiles(h: int, w: int, tile: int, overlap: int) -> int:
    return len(positions(max(h, tile), tile, overlap)) * len(positions(max(w, tile), tile, overlap))
