"""Image-quality metrics exactly as the NAFNet paper computed them (BasicSR fork in megvii-research/NAFNet).

How the paper's GoPro PSNR/SSIM figures were produced (``basicsr/test.py`` + ``basicsr/metrics/
psnr_ssim.py`` of that repository), and what this module reproduces:

* ``basicsr/test.py`` validates with ``use_image=True``: the network output and the ground truth are
  first turned into 8-bit images by ``tensor2img`` (clamp to [0, 1], ``* 255.0`` in float32, numpy
  ``round`` = half-to-even, cast to uint8) -> :func:`to_uint8`.  ``rgb2bgr=True`` there only swaps the
  channel order, which changes none of the metrics below (PSNR is order-free; the 3-D window and its
  replicate padding are symmetric along the channel axis, so a channel flip just mirrors the SSIM map).
* PSNR (``calculate_psnr``, ``crop_border=0``, ``test_y_channel=False``): over all RGB values in
  float64, ``20 * log10(255 / sqrt(mse))``, ``inf`` when identical -> :func:`psnr`.
* SSIM (``calculate_ssim`` with its default ``ssim3d=True``): **not** the per-channel SSIM of Wang et
  al. but ``_ssim_3d``: the H x W x C image is treated as one volume and filtered with a 3-D Gaussian
  ``g[a] * g[b] * g[c]`` (``g = cv2.getGaussianKernel(11, 1.5)``) by ``torch.nn.Conv3d(1, 1, (11, 11, 11),
  padding=(5, 5, 5), padding_mode='replicate')`` applied to the ``(1, 1, H, W, C)`` tensor, i.e. depth =
  image rows, height = image columns, width = the 3 colour channels.  Every axis, the 3-long channel
  axis included, is padded by 5 with edge replication, so the output keeps the full H x W x C shape;
  the SSIM map (C1 = (0.01*255)^2, C2 = (0.03*255)^2) is averaged over all H*W*C entries, borders
  included -> :func:`ssim_basicsr3d`.
* :func:`ssim_standard` is the conventional alternative most other papers report (per-channel 11x11
  Gaussian SSIM, sigma 1.5, averaged over channels, 5-pixel border excluded), identical to
  ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255, channel_axis=-1)``.

Deliberate differences from the original code (both under 1e-4, but enough to flip a printed 4th decimal):

* BasicSR ran ``_ssim_3d`` in float32 (on the GPU, cuDNN, ``cudnn.benchmark=True`` so the conv
  algorithm is picked at run time); here everything is float64, the value the float32 run approximates.
  The float32 result is not reproducible bit for bit: ``var = E[x^2] - mu^2`` cancels catastrophically
  at 8-bit magnitudes, so it depends on the summation order.  On skimage's sample photos a CPU float32
  Conv3d lands 0.6e-6 .. 2.7e-5 above the float64 value, a float32 separable filter within 4e-7.
* BasicSR picks the peak as ``1 if img1.max() <= 1 else 255`` (``img1`` = restored image), which only
  matters for an all-black (max 0 or 1) 8-bit output; here the peak is always 255 (``peak`` argument).

The filters are the field's libraries: SciPy's ``correlate1d`` with ``mode="nearest"`` (edge replication) for
the 3-D SSIM, scikit-image's ``structural_similarity`` for the standard one (both arrive with scikit-image, a
dependency already); the tests check them against direct sums and a torch Conv3d.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np

from .photo import from_float

__all__ = ["to_uint8", "psnr", "ssim_basicsr3d", "ssim_standard", "gaussian_kernel"]

_K1, _K2 = 0.01, 0.03
_WIN, _SIGMA = 11, 1.5


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] (any shape, typically H x W x C) -> uint8, as BasicSR's ``tensor2img``:
    float32, clamp to [0, 1], ``* 255``, round half-to-even, cast.  NaN becomes 0.  (The package's one
    float -> integer rule, :func:`nafnet_litert.photo.from_float`.)"""
    a = np.asarray(img)
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"to_uint8 expects a float image in [0, 1], got dtype {a.dtype}")
    return from_float(a, np.uint8)


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise TypeError(f"metrics expect uint8 images (use to_uint8), got {a.dtype} and {b.dtype}")
    return a.astype(np.float64), b.astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray, peak: float | None = None) -> float:
    """PSNR in dB over all values (RGB, no border crop), float64; ``inf`` for identical images.  The peak is
    the dtype's: 255 for uint8, 65535 for uint16, 1.0 for float images in [0, 1] (``peak`` overrides)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    if a.dtype != b.dtype and not (a.dtype.kind == b.dtype.kind == "f"):
        raise TypeError(f"PSNR of images of different dtypes ({a.dtype} and {b.dtype})")
    if peak is None:
        peak = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(a.dtype, 1.0)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0.0:
        return math.inf
    return float(20.0 * np.log10(peak / np.sqrt(mse)))


def gaussian_kernel(size: int = _WIN, sigma: float = _SIGMA) -> np.ndarray:
    """1-D Gaussian taps, sum 1 (what ``cv2.getGaussianKernel(size, sigma)`` returns for sigma > 0 and
    what ``scipy.ndimage.gaussian_filter`` uses with ``truncate = (size // 2) / sigma``)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _ssim_map(a: np.ndarray, b: np.ndarray, filt, peak: float) -> np.ndarray:
    c1 = (_K1 * peak) ** 2
    c2 = (_K2 * peak) ** 2
    mu_a, mu_b = filt(a), filt(b)
    mu_aa, mu_bb, mu_ab = mu_a * mu_a, mu_b * mu_b, mu_a * mu_b
    var_a = filt(a * a) - mu_aa
    var_b = filt(b * b) - mu_bb
    cov = filt(a * b) - mu_ab
    return ((2.0 * mu_ab + c1) * (2.0 * cov + c2)) / ((mu_aa + mu_bb + c1) * (var_a + var_b + c2))


def ssim_basicsr3d(a_u8: np.ndarray, b_u8: np.ndarray, peak: float = 255.0) -> float:
    """The NAFNet paper's SSIM (BasicSR ``_ssim_3d``): H x W x C volume, separable 11x11x11 Gaussian
    (sigma 1.5) with edge-replicate padding of 5 on every axis (channel axis included), full-size SSIM
    map averaged over all H*W*C entries.  Computed in float64."""
    a, b = _check_pair(a_u8, b_u8)
    if a.ndim != 3:
        raise ValueError(f"ssim_basicsr3d expects H x W x C images, got shape {a.shape}")
    from scipy.ndimage import correlate1d

    g = gaussian_kernel()

    def filt(x: np.ndarray) -> np.ndarray:
        for axis in range(3):  # separable; "nearest" is Conv3d's replicate padding, the channel axis included
            x = correlate1d(x, g, axis=axis, mode="nearest")
        return x

    return float(_ssim_map(a, b, filt, peak).mean())


def ssim_standard(a_u8: np.ndarray, b_u8: np.ndarray, peak: float = 255.0) -> float:
    """Per-channel Gaussian SSIM (11x11, sigma 1.5, population covariance), averaged over channels.

    scikit-image's ``structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=255, channel_axis=-1)``: it drops a 5-pixel border before averaging, so every retained value
    comes from a window lying wholly inside the image.  A 2-D image is one channel."""
    from skimage.metrics import structural_similarity

    a, b = _check_pair(a_u8, b_u8)
    if a.ndim not in (2, 3):
        raise ValueError(f"ssim_standard expects H x W [x C] images, got shape {a.shape}")
    if min(a.shape[:2]) < _WIN:
        raise ValueError(f"ssim_standard needs images of at least {_WIN}x{_WIN}, got {a.shape[:2]}")
    mssim = structural_similarity(
        a, b, gaussian_weights=True, sigma=_SIGMA, use_sample_covariance=False, data_range=peak,
        channel_axis=-1 if a.ndim == 3 else None,
    )  # fmt: skip
    return float(cast(float, mssim))  # without full= or gradient= it returns the mean SSIM alone, not a tuple
