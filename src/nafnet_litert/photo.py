"""A photo in memory: the :class:`Photo` type and the package's pixel rules, pure numpy.

It sits on the base floor because every floor above uses the same rules: ``io`` decodes files into a
:class:`Photo` and encodes it back, ``metrics`` and training round floats with :func:`from_float`, and ``restore``
turns a photo into RGB for the network and back — without calling into ``io``.

* **One float <-> integer rule** (:func:`to_float`, :func:`from_float`): divide by the dtype's peak; back by
  clamping to [0, 1], multiplying by the peak in float32 and rounding half to even (BasicSR's ``tensor2img`` for
  uint8). NaN becomes 0. Floats are scaled by the dtype (8 or 16 bits), never by the pixel values, so a dark 16-bit
  image stays dark.
* **One gray rule** (:func:`to_gray`): ITU-R BT.601 luma (Pillow's ``L``). A gray photo is shown to an RGB model
  as three equal channels and the result is turned back into gray with the same rule.
* Alpha is carried through untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from .errors import ImageError

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_PEAK = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def to_float(a: np.ndarray) -> np.ndarray:
    """uint8 / uint16 -> float32 in [0, 1] (divided by 255 / 65535); a float array is returned as float32."""
    a = np.asarray(a)
    if a.dtype.kind == "f":
        return a.astype(np.float32, copy=False)
    if a.dtype not in _PEAK:
        raise ImageError(f"images must be uint8, uint16 or float, got {a.dtype}")
    return a.astype(np.float32) / np.float32(_PEAK[a.dtype])


def from_float(a: np.ndarray, dtype: npt.DTypeLike = np.uint8) -> np.ndarray:
    """float -> uint8 / uint16: NaN to 0, clamp to [0, 1], x peak in float32, round half to even. A float dtype
    only casts (no clamping)."""
    dtype = np.dtype(dtype)
    a = np.asarray(a)
    if dtype.kind == "f":
        return a.astype(dtype)
    if dtype not in _PEAK:
        raise ImageError(f"images must be uint8, uint16 or float, got {dtype}")
    a = np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return np.round(np.clip(a, np.float32(0), np.float32(1)) * np.float32(_PEAK[dtype])).astype(dtype)


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 -> H x W x 1 by BT.601 luma, in the input's dtype (integers rounded)."""
    a = np.asarray(rgb)
    g = a.astype(np.float32) @ _LUMA[:, None]
    return g if a.dtype.kind == "f" else np.round(g).clip(0, np.iinfo(a.dtype).max).astype(a.dtype)


@dataclass
class Photo:
    """``color``: H x W x C (C = 1 or 3), uint8 or uint16; ``alpha``: H x W of the same dtype, or None."""

    color: np.ndarray
    alpha: np.ndarray | None = None
    icc: bytes | None = None
    exif: bytes | None = None
    extra: dict = field(default_factory=dict)
    #: What the reader had to decide that the user should hear about (e.g. "page 1 of 3 used").
    notes: list[str] = field(default_factory=list)

    @property
    def gray(self) -> bool:
        return self.color.shape[2] == 1

    @property
    def bits(self) -> int:
        return 16 if self.color.dtype == np.uint16 else 8

    def rgb_float(self) -> np.ndarray:
        """float32 H x W x 3 in [0, 1] for the model (gray replicated)."""
        return to_float(self.rgb())

    def rgb(self) -> np.ndarray:
        """H x W x 3 in the photo's own dtype (gray replicated)."""
        return np.repeat(self.color, 3, axis=2) if self.gray else self.color

    def float(self, channels: int = 3) -> np.ndarray:
        """float32 H x W x ``channels`` (1 or 3) in [0, 1], alpha dropped, by the package's gray rule."""
        if channels == 1:
            return to_float(self.color if self.gray else to_gray(self.color))
        return self.rgb_float()

    def with_color(self, rgb: np.ndarray) -> "Photo":
        """A copy whose colour is ``rgb`` (H x W x 3, float in [0, 1] or the native dtype) in this photo's depth
        and mode; alpha, ICC and EXIF are kept."""
        a = np.asarray(rgb)
        if self.gray and a.shape[2] == 3:
            a = to_gray(np.clip(a, 0, 1) if a.dtype.kind == "f" else a)  # clamped first, as integer results are
        a = from_float(a, self.color.dtype) if a.dtype.kind == "f" else a.astype(self.color.dtype)
        return Photo(a, self.alpha, self.icc, self.exif, dict(self.extra))


def split_alpha(a: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """H x W, or H x W x 1..4 -> (H x W x C colour, H x W alpha or None): a 2nd or 4th channel is alpha."""
    if a.ndim == 2:
        return a[:, :, None], None
    if a.shape[2] in (2, 4):
        return a[:, :, :-1], a[:, :, -1]
    return a, None


def photo_from_array(a: np.ndarray) -> Photo:
    """H x W (gray), H x W x 1|2|3|4 (gray, gray+alpha, RGB, RGBA) in uint8, uint16 or float -> :class:`Photo`
    (a float array keeps its dtype: it is only a container here)."""
    a = np.asarray(a)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 2, 3, 4)):
        raise ImageError(f"an image must be H x W or H x W x 1..4, got shape {a.shape}")
    if a.dtype.kind != "f" and a.dtype not in _PEAK:
        raise ImageError(f"images must be uint8, uint16 or float, got {a.dtype}")
    color, alpha = split_alpha(a)
    return Photo(np.ascontiguousarray(color), alpha)


def photo_to_array(photo: Photo, gray_2d: bool = False) -> np.ndarray:
    """The inverse of :func:`photo_from_array`: H x W x C (colour, then alpha), or H x W for gray with
    ``gray_2d``."""
    a = photo.color if photo.alpha is None else np.concatenate([photo.color, photo.alpha[:, :, None]], axis=2)
    return a[:, :, 0] if gray_2d and a.shape[2] == 1 else a


def centre_crop(a: np.ndarray, height: int, width: int) -> np.ndarray:
    """The centre ``height`` x ``width`` of an H x W [x C] array (a view; each side at most the array's own)."""
    h, w = a.shape[:2]
    ch, cw = min(height, h), min(width, w)
    y, x = (h - ch) // 2, (w - cw) // 2
    return a[y : y + ch, x : x + cw]
