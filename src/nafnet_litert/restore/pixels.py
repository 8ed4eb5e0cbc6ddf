"""The tensor side of restoring: padding, NCHW layout, the Pillow bridge of :class:`Restorer.__call__` and the
fitting of audit inputs to a model's size.

These live in ``restore`` (not ``io``) because only restoring and the floors above it use them: a photo's walk
through :meth:`~.restorer.Restorer.restore_photo` touches no file code. The pixel rules both ``io`` and ``restore``
need (the float <-> integer and gray rules, :class:`~nafnet_litert.photo.Photo`) are one floor lower, in
:mod:`nafnet_litert.photo`. Pillow is imported on first use.
"""

from __future__ import annotations

import numpy as np

from ..photo import Photo, centre_crop, photo_from_array, photo_to_array


def pad_to_multiple(img: np.ndarray, multiple: int) -> np.ndarray:
    """Zero-pad H x W x C at the bottom/right to multiples of ``multiple``, as the reference NAFNet does."""
    h, w = img.shape[:2]
    ph, pw = (-h) % multiple, (-w) % multiple
    return np.pad(img, ((0, ph), (0, pw), (0, 0))) if ph or pw else img


def to_nchw(img: np.ndarray) -> np.ndarray:
    """float H x W x C -> float32 [1, C, H, W]."""
    return np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32)


def from_nchw(x: np.ndarray) -> np.ndarray:
    """[1, C, H, W] -> H x W x C."""
    return np.ascontiguousarray(np.asarray(x)[0].transpose(1, 2, 0))


_PIL_MODES = {"L", "LA", "RGB", "RGBA", "I;16"}


def photo_from_pil(im) -> Photo:
    """A Pillow image in mode L, LA, RGB, RGBA or I;16 -> :class:`Photo` (other modes: converted to RGB(A))."""
    if im.mode not in _PIL_MODES:
        im = im.convert("RGBA" if "A" in im.getbands() or "transparency" in im.info else "RGB")
    a = np.asarray(im)
    if im.mode == "I;16":
        a = a.astype(np.uint16)
    photo = photo_from_array(a)
    photo.icc = im.info.get("icc_profile")
    return photo


def photo_to_pil(photo: Photo):
    """A :class:`Photo` -> a Pillow image: L, LA, RGB or RGBA for 8 bits, I;16 for 16-bit gray."""
    from PIL import Image

    im = Image.fromarray(photo_to_array(photo, gray_2d=True))  # a 2-D uint16 array is mode I;16
    if photo.icc:
        im.info["icc_profile"] = photo.icc
    return im


def fit_to_size(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Centre crop float H x W x C to ``size`` (H, W); an image smaller than that is first enlarged (bicubic)."""
    h, w = img.shape[:2]
    th, tw = size
    if h < th or w < tw:
        from PIL import Image

        f = max(th / h, tw / w)
        nh, nw = max(th, round(h * f)), max(tw, round(w * f))
        chans = [
            np.asarray(Image.fromarray(img[:, :, c]).resize((nw, nh), Image.Resampling.BICUBIC), np.float32)
            for c in range(img.shape[2])
        ]
        img = np.clip(np.stack(chans, axis=2), 0, 1)
        h, w = nh, nw
    return np.ascontiguousarray(centre_crop(img, th, tw))
