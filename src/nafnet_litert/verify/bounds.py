"""Upper bounds of the largest partial sum an fp16 accumulator could hold, whatever the summation order, and the
magnitude statistics of the values themselves (largest and smallest |v|, NaN and inf).

Pure numpy / torch on float64 magnitudes, one op at a time: ``sum |w| |x| + |b|`` for convolutions and matrix
products, ``sum |x|`` for reductions and average pooling. :mod:`.headroom` applies them to every accumulating op of
a .tflite file, with the op's inputs and weights from the LiteRT interpreter.
"""

from __future__ import annotations

import math

import numpy as np


def _peak(a) -> float:
    """max over non-NaN values (NaN when all are NaN; 0 for an empty array)."""
    a = np.asarray(a)
    if a.size == 0:
        return 0.0
    m = float(a.max())
    if math.isnan(m):
        rest = a[~np.isnan(a)]
        return float(rest.max()) if rest.size else math.nan
    return m


def _same_pads(size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """TFLite SAME padding: (before, after) along one axis."""
    out = -(-size // stride)
    eff = (k - 1) * dilation + 1
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


def _pad_nchw(x, padding: str, kh: int, kw: int, sh: int, sw: int, dh: int = 1, dw: int = 1):
    """Zero-pad an NCHW torch tensor the way TFLite pads for ``padding`` ("SAME" or "VALID")."""
    import torch.nn.functional as F

    if padding != "SAME":
        return x
    top, bottom = _same_pads(x.shape[2], kh, sh, dh)
    left, right = _same_pads(x.shape[3], kw, sw, dw)
    if top or bottom or left or right:
        x = F.pad(x, (left, right, top, bottom))
    return x


def conv_bound(
    x_nhwc: np.ndarray,
    filt: np.ndarray,
    bias: np.ndarray | None,
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    padding: str = "SAME",
    depthwise: bool = False,
) -> float:
    """max over outputs of ``sum |w| |x| + |b|`` for a TFLite CONV_2D (filter ``[O,kh,kw,I]``, groups = C / I) or
    DEPTHWISE_CONV_2D (filter ``[1,kh,kw,C*mult]``), in float64.

    CONV_2D runs ``torch.nn.functional.conv2d`` on NCHW (a 1x1, stride-1, ungrouped one a matrix product);
    DEPTHWISE_CONV_2D sums the kh*kw shifted, strided NHWC slices times the tap's |w| (torch's float64 depthwise
    convolution took ~0.2 s for one 32x32x256 op)."""
    import torch
    import torch.nn.functional as F

    c = x_nhwc.shape[3]
    w = np.abs(np.asarray(filt, np.float64))
    b = None if bias is None else np.abs(np.asarray(bias, np.float64)).reshape(-1)
    xa = np.abs(np.asarray(x_nhwc, np.float64))
    if depthwise:
        return _depthwise_bound(xa, w, b, stride, dilation, padding)
    if c % w.shape[3]:
        raise ValueError(f"conv filter {list(w.shape)} does not fit {c} input channels")
    groups = c // w.shape[3]
    kh, kw = w.shape[1], w.shape[2]
    if kh == kw == 1 and stride == (1, 1) and groups == 1:
        y = torch.from_numpy(xa.reshape(-1, c)) @ torch.from_numpy(w.reshape(w.shape[0], c)).T
        if b is not None:
            y += torch.from_numpy(b)
        return _peak(y.numpy())
    xt = torch.from_numpy(xa).permute(0, 3, 1, 2)
    xt = _pad_nchw(xt, padding, kh, kw, *stride, *dilation)
    wt = torch.from_numpy(np.ascontiguousarray(w.transpose(0, 3, 1, 2)))  # [O, I, kh, kw]
    with torch.no_grad():
        bt = None if b is None else torch.from_numpy(b)
        y = F.conv2d(xt, wt, bt, stride=stride, dilation=dilation, groups=groups)
    return _peak(y.numpy())


def _depthwise_bound(xa, w, b, stride, dilation, padding: str) -> float:
    """:func:`conv_bound` of a DEPTHWISE_CONV_2D on magnitudes ``xa`` (NHWC), ``w`` and ``b`` (float64)."""
    n, h, w_, c = xa.shape
    kh, kw = w.shape[1], w.shape[2]
    (sh, sw), (dh, dw) = stride, dilation
    mult = w.shape[3] // c
    if w.shape[3] != c * mult:
        raise ValueError(f"depthwise filter {list(w.shape)} does not fit {c} input channels")
    if padding == "SAME":
        (top, bottom), (left, right) = _same_pads(h, kh, sh, dh), _same_pads(w_, kw, sw, dw)
        xa = np.pad(xa, ((0, 0), (top, bottom), (left, right), (0, 0)))
    if mult > 1:  # output channel c * mult + m reads input channel c
        xa = np.repeat(xa, mult, axis=3)
    ho = (xa.shape[1] - (kh - 1) * dh - 1) // sh + 1
    wo = (xa.shape[2] - (kw - 1) * dw - 1) // sw + 1
    if ho <= 0 or wo <= 0:
        return 0.0
    acc = np.zeros((n, ho, wo, c * mult)) if b is None else np.broadcast_to(b, (n, ho, wo, c * mult)).copy()
    for u in range(kh):
        for v in range(kw):
            tap = xa[:, u * dh : u * dh + (ho - 1) * sh + 1 : sh, v * dw : v * dw + (wo - 1) * sw + 1 : sw]
            acc += tap * w[0, u, v]
    return _peak(acc)


def reduce_bound(x: np.ndarray, axes) -> float:
    """max over outputs of ``sum |x|`` over ``axes`` (a MEAN computed as a sum, then one division)."""
    axes = tuple(sorted({int(a) % x.ndim for a in np.atleast_1d(axes)})) if x.ndim else ()
    s = np.abs(x).sum(axis=axes, dtype=np.float64)
    return _peak(s)


def pool_bound(x_nhwc: np.ndarray, filt: tuple[int, int], stride: tuple[int, int], padding: str = "SAME") -> float:
    """max over windows of ``sum |x|`` for AVERAGE_POOL_2D (padding contributes zeros, i.e. nothing)."""
    import torch
    import torch.nn.functional as F

    xa = torch.from_numpy(np.abs(np.asarray(x_nhwc, np.float64))).permute(0, 3, 1, 2)
    xa = _pad_nchw(xa, padding, filt[0], filt[1], stride[0], stride[1])
    with torch.no_grad():
        y = F.avg_pool2d(xa, filt, stride) * (filt[0] * filt[1])
    return _peak(y.numpy())


def matmul_bound(x: np.ndarray, w_oi: np.ndarray, bias: np.ndarray | None) -> float:
    """FULLY_CONNECTED: max of ``|x| |W|^T + |b|`` with ``x`` flattened to ``[-1, I]`` and ``W`` ``[O, I]``."""
    w = np.abs(np.asarray(w_oi, np.float64))
    xa = np.abs(np.asarray(x, np.float64)).reshape(-1, w.shape[1])
    y = xa @ w.T
    if bias is not None:
        y = y + np.abs(np.asarray(bias, np.float64)).reshape(1, -1)
    return _peak(y)


def batch_matmul_bound(x: np.ndarray, y: np.ndarray, adj_x: bool = False, adj_y: bool = False) -> float:
    """BATCH_MATMUL: max of ``|x| |y|`` (each operand's last two axes swapped first when its ``adj`` is set)."""
    a = np.abs(np.asarray(x, np.float64))
    b = np.abs(np.asarray(y, np.float64))
    if adj_x:
        a = np.swapaxes(a, -1, -2)
    if adj_y:
        b = np.swapaxes(b, -1, -2)
    return _peak(np.matmul(a, b))


# ---------------------------------------------------------------------------------------------------------------
# Magnitudes of the values themselves.


def magnitude_stats(arrays: list[np.ndarray]) -> tuple[float, bool, bool, int]:
    """(max |v| over non-NaN values, any NaN, any inf, index of the array holding the max)."""
    best, nan, inf, arg = 0.0, False, False, 0
    for k, a in enumerate(arrays):
        if a.size == 0 or a.dtype.kind not in "fc":
            continue
        m = float(np.max(np.abs(a)))
        if math.isnan(m):
            nan = True
            m = float(np.nanmax(np.abs(a))) if not np.isnan(a).all() else 0.0
        if math.isinf(m):
            inf = True
        if m > best:
            best, arg = m, k
    return best, nan, inf, arg


def min_abs(a: np.ndarray) -> float:
    """min |v| over non-NaN values (NaN when all are NaN; inf for an empty array)."""
    if a.size == 0:
        return math.inf
    with np.errstate(invalid="ignore"):
        m = float(np.nanmin(np.abs(a))) if not np.isnan(a).all() else math.nan
    return m


__all__ = [
    "batch_matmul_bound", "conv_bound", "magnitude_stats", "matmul_bound", "min_abs", "pool_bound", "reduce_bound",
]  # fmt: skip
