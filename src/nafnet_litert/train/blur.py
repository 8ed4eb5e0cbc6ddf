"""Synthetic motion blur, made on the fly from sharp images.

Two kernel families, both rasterised with bilinear (sub-pixel) splatting into an odd-sized square, normalised to
sum 1 and centred on their centre of mass (so a blurred image is not shifted against its sharp target):

* **camera shake**: a random 2-D walk with momentum (a velocity that keeps most of its direction from one time
  step to the next, random jerks, a weak pull back towards the start), sampled uniformly in *time*, so where the
  camera moves slowly the kernel is brighter, as in a real exposure;
* **linear**: a straight segment of random length (3..25 px) and angle.

:func:`blur_image` applies a kernel with :func:`torch.nn.functional.conv2d` (one depthwise convolution, reflect
padding), optionally in linear light (``x**2.2``, blur, ``**(1/2.2)``, like GoPro's frame averaging of a
gamma-encoded video), then optionally adds a little Gaussian noise and rounds to 8 bits.

Everything random comes from one :class:`numpy.random.Generator`, so a blur is a pure function of the
generator's state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class BlurSettings:
    """How :func:`random_kernel` and :func:`blur_image` draw a degradation."""

    max_kernel: int = 31  #: largest kernel side (odd); bounds the blur extent
    p_linear: float = 0.3  #: probability of a linear kernel instead of camera shake
    linear_length: tuple[int, int] = (3, 25)  #: range of linear kernel lengths in pixels
    p_sharp: float = 0.03  #: probability of no blur at all (teaches the model to leave sharp input alone)
    p_gamma: float = 0.5  #: probability of blurring in linear light
    gamma: float = 2.2
    p_noise: float = 0.5  #: probability of adding Gaussian noise ...
    max_noise: float = 0.01  #: ... of a standard deviation drawn uniformly from [0, max_noise]
    quantize: bool = True  #: round the blurred image to 8 bits, like a real saved frame

    def __post_init__(self) -> None:
        if self.max_kernel < 3 or self.max_kernel % 2 == 0:
            raise ValueError(f"max_kernel must be odd and at least 3, got {self.max_kernel}")
        lo, hi = self.linear_length
        if not 1 <= lo <= hi:
            raise ValueError(f"bad linear_length range {self.linear_length}")


# ----------------------------------------------------------------------------------------------------- kernels


def splat(points: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """Rasterise weighted sub-pixel points ``(x, y)`` into a ``size x size`` kernel by bilinear splatting."""
    k = np.zeros((size + 1, size + 1), np.float64)  # one spare row/column for points exactly on the last pixel
    x, y = points[:, 0], points[:, 1]
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = x - x0, y - y0
    if x0.min() < 0 or y0.min() < 0 or x0.max() >= size or y0.max() >= size:
        raise ValueError("splat points fall outside the kernel")
    np.add.at(k, (y0, x0), weights * (1 - fx) * (1 - fy))
    np.add.at(k, (y0, x0 + 1), weights * fx * (1 - fy))
    np.add.at(k, (y0 + 1, x0), weights * (1 - fx) * fy)
    np.add.at(k, (y0 + 1, x0 + 1), weights * fx * fy)
    if k[size].sum() + k[:, size].sum() > 1e-6 * k.sum():
        raise ValueError("splat points fall outside the kernel")
    k = k[:size, :size]
    return (k / k.sum()).astype(np.float32)


def _centred_kernel(points: np.ndarray, weights: np.ndarray, max_size: int) -> np.ndarray:
    """Move the points' weighted centroid to the centre of the smallest odd kernel that holds them, and splat."""
    points = points - (weights[:, None] * points).sum(0) / weights.sum()
    reach = float(np.abs(points).max()) if len(points) else 0.0
    limit = (max_size - 3) / 2  # a point at +-limit and its bilinear neighbour stay inside max_size
    if reach > limit:
        points = points * (limit / reach)
        reach = limit
    size = 2 * int(math.floor(reach)) + 3  # centre c = floor(reach) + 1, so c +- reach lies in (0, size - 1)
    return splat(points + (size - 1) / 2, weights, size)


def delta_kernel() -> np.ndarray:
    k = np.zeros((3, 3), np.float32)
    k[1, 1] = 1.0
    return k


def linear_kernel(length: float, angle: float, max_size: int = 31) -> np.ndarray:
    """A uniform straight-line kernel ``length`` pixels long at ``angle`` radians, centred."""
    length = max(1.0, min(float(length), max_size - 2.0))
    n = max(2, int(math.ceil(length * 4)))
    t = np.linspace(-(length - 1) / 2, (length - 1) / 2, n)
    points = np.stack([t * math.cos(angle), t * math.sin(angle)], 1)
    return _centred_kernel(points, np.ones(n), max_size)


def camera_shake_kernel(rng: np.random.Generator, max_size: int = 31, radius: float | None = None) -> np.ndarray:
    """A random camera-shake kernel: a walk with momentum, scaled so its farthest point lies ``radius`` pixels
    from its centroid (drawn in ``[1, (max_size - 3) / 2]`` when not given)."""
    steps = int(rng.integers(12, 64))
    momentum = rng.uniform(0.7, 0.97)
    pull = rng.uniform(0.0, 0.1)  # centripetal: a hand tends to come back
    p_jerk = rng.uniform(0.0, 0.05)
    angle = rng.uniform(0, 2 * math.pi)
    v = np.array([math.cos(angle), math.sin(angle)])
    pos = np.zeros(2)
    track = [pos.copy()]
    for _ in range(steps):
        turn = rng.standard_normal(2)
        if rng.random() < p_jerk:
            v = -v * rng.uniform(0.3, 1.0) + turn
        v = momentum * v + (1 - momentum) * turn * 1.5 - pull * pos / max(1.0, math.sqrt(steps))
        v = v / (np.linalg.norm(v) + 1e-12) * rng.uniform(0.4, 1.6)  # uneven speed -> uneven brightness
        pos = pos + v
        track.append(pos.copy())
    track = np.asarray(track)
    track = track - track.mean(0)
    if radius is None:
        radius = rng.uniform(1.0, (max_size - 3) / 2)
    reach = float(np.abs(track).max())
    track = track * (radius / reach) if reach > 0 else track
    # sample every segment densely (< 0.25 px apart) with equal total weight per segment: uniform in time
    seg = np.linalg.norm(np.diff(track, axis=0), axis=1)
    sub = max(1, int(math.ceil(seg.max() / 0.25))) if len(seg) else 1
    frac = (np.arange(sub) + 0.5) / sub
    a, b = track[:-1, None, :], track[1:, None, :]
    points = (a + (b - a) * frac[None, :, None]).reshape(-1, 2)
    return _centred_kernel(points, np.ones(len(points)), max_size)


def random_kernel(rng: np.random.Generator, settings: BlurSettings = BlurSettings()) -> np.ndarray:
    """One kernel drawn as ``settings`` say: none, linear or camera shake."""
    u = rng.random()
    if u < settings.p_sharp:
        return delta_kernel()
    if u < settings.p_sharp + settings.p_linear:
        lo, hi = settings.linear_length
        return linear_kernel(rng.uniform(lo, hi), rng.uniform(0, math.pi), settings.max_kernel)
    return camera_shake_kernel(rng, settings.max_kernel)


# ------------------------------------------------------------------------------------------------- application


def apply_kernel(img: torch.Tensor, kernel: np.ndarray | torch.Tensor, padding: str = "reflect") -> torch.Tensor:
    """Convolve every channel of ``img`` (C x H x W or N x C x H x W) with one 2-D kernel; same-size output.

    ``padding`` is ``"reflect"`` (falls back to ``"replicate"`` when the image is smaller than the kernel's
    half-width) or ``"valid"`` (no padding; output smaller by ``kernel_size - 1``).
    """
    squeeze = img.ndim == 3
    x = img[None] if squeeze else img
    k = torch.as_tensor(np.ascontiguousarray(kernel), dtype=x.dtype)
    ks = k.shape[-1]
    c = x.shape[1]
    weight = torch.flip(k, dims=(0, 1)).expand(c, 1, ks, ks).contiguous()  # true convolution, not correlation
    if padding != "valid" and ks > 1:
        p = ks // 2
        mode = "reflect" if min(x.shape[-2:]) > p else "replicate"
        x = F.pad(x, (p, p, p, p), mode=mode)
    y = F.conv2d(x, weight, groups=c)
    return y[0] if squeeze else y


def blur_image(
    sharp: torch.Tensor,
    rng: np.random.Generator,
    settings: BlurSettings = BlurSettings(),
    kernel: np.ndarray | None = None,
) -> tuple[torch.Tensor, np.ndarray]:
    """Blur a C x H x W image in [0, 1] with a random (or given) kernel; returns ``(blurred, kernel)``.

    The order of draws is fixed (kernel, gamma, noise), so the result depends only on ``rng``'s state.
    """
    if kernel is None:
        kernel = random_kernel(rng, settings)
    use_gamma = rng.random() < settings.p_gamma
    use_noise = rng.random() < settings.p_noise
    sigma = rng.uniform(0.0, settings.max_noise)
    x = sharp.clamp(0, 1)
    if use_gamma:
        x = x.pow(settings.gamma)
    y = apply_kernel(x, kernel)
    if use_gamma:
        y = y.clamp_min(0).pow(1.0 / settings.gamma)
    if use_noise and sigma > 0:
        noise = rng.standard_normal(tuple(y.shape), dtype=np.float32) * np.float32(sigma)
        y = y + torch.from_numpy(noise).to(y.dtype)
    y = y.clamp(0, 1)
    if settings.quantize:
        y = torch.round(y * 255.0) / 255.0
    return y, kernel
