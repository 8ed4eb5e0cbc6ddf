"""Image files <-> float32 arrays in [0, 1] (H x W x C), with Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import NafnetLitertError


class ImageError(NafnetLitertError):
    """An input image is missing or unreadable."""


def load_image(path: str | Path, channels: int = 3) -> np.ndarray:
    """Read an image as float32 H x W x ``channels`` in [0, 1]: EXIF orientation applied, alpha dropped,
    8- and 16-bit depths scaled by their own maximum."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            arr = _to_float(im)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ImageError(f"{path.name}: not a readable image ({e})") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] in (2, 4):  # drop alpha
        arr = arr[:, :, :-1]
    if channels == 3 and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif channels == 1 and arr.shape[2] == 3:
        arr = arr @ np.array([0.299, 0.587, 0.114], np.float32)[:, None]
    return np.ascontiguousarray(arr, dtype=np.float32)


def _to_float(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im).astype(np.float32)
        return a / (65535.0 if a.max() > 255 or im.mode.startswith("I;16") else 255.0)
    if im.mode not in ("L", "LA", "RGB", "RGBA"):
        im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
    a = np.asarray(im)
    return a.astype(np.float32) / (65535.0 if a.dtype == np.uint16 else 255.0)


def save_image(arr: np.ndarray, path: str | Path) -> None:
    """Write float H x W x C in [0, 1] as 8-bit (clamped, rounded)."""
    a = np.clip(np.asarray(arr, np.float32), 0, 1)
    u8 = np.round(a * 255.0).astype(np.uint8)
    if u8.ndim == 3 and u8.shape[2] == 1:
        u8 = u8[:, :, 0]
    Image.fromarray(u8).save(str(path))


def fit_to_size(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Centre crop to ``size`` (H, W); an image smaller than that is first enlarged (bicubic) to cover it."""
    h, w = img.shape[:2]
    th, tw = size
    if h < th or w < tw:
        f = max(th / h, tw / w)
        nh, nw = max(th, round(h * f)), max(tw, round(w * f))
        chans = [
            np.asarray(Image.fromarray(img[:, :, c]).resize((nw, nh), Image.BICUBIC), np.float32)
            for c in range(img.shape[2])
        ]
        img = np.clip(np.stack(chans, axis=2), 0, 1)
        h, w = nh, nw
    y, x = (h - th) // 2, (w - tw) // 2
    return np.ascontiguousarray(img[y : y + th, x : x + tw])


def pad_to_multiple(img: np.ndarray, multiple: int) -> np.ndarray:
    """Zero-pad H x W x C at the bottom/right to multiples of ``multiple``, as the reference NAFNet does."""
    h, w = img.shape[:2]
    ph, pw = (-h) % multiple, (-w) % multiple
    return np.pad(img, ((0, ph), (0, pw), (0, 0))) if ph or pw else img


def to_nchw(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32)


def from_nchw(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(x)[0].transpose(1, 2, 0))
