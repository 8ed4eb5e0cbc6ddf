"""Photo files for the deblur pipeline: read with everything a user expects to survive, write atomically.

* 8- and 16-bit kept: 8-bit through Pillow; 16-bit PNG through pypng and 16-bit TIFF through tifffile (Pillow
  reads both as 8-bit). Output is written at the input's bit depth.
* Grayscale stays grayscale (the model sees it replicated to RGB; the output is the mean of its channels).
* Alpha is carried through untouched.
* EXIF orientation is applied on reading; EXIF (with orientation reset) and the ICC profile are kept on writing
  where Pillow can (JPEG, PNG, WebP, 8-bit TIFF).
* Files are written to a temporary name in the target folder and renamed when complete.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .fileutil import atomic_path
from .images import ImageError

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")
_ORIENTATION = 0x0112


@dataclass
class Photo:
    """``color``: H x W x C (C = 1 or 3), uint8 or uint16; ``alpha``: H x W of the same dtype, or None."""

    color: np.ndarray
    alpha: np.ndarray | None = None
    icc: bytes | None = None
    exif: bytes | None = None
    extra: dict = field(default_factory=dict)

    @property
    def gray(self) -> bool:
        return self.color.shape[2] == 1

    @property
    def bits(self) -> int:
        return 16 if self.color.dtype == np.uint16 else 8

    def rgb_float(self) -> np.ndarray:
        """float32 H x W x 3 in [0, 1] for the model."""
        a = self.color.astype(np.float32) / (65535.0 if self.bits == 16 else 255.0)
        return np.repeat(a, 3, axis=2) if self.gray else a

    def with_color(self, rgb: np.ndarray) -> "Photo":
        """A copy whose colour is ``rgb`` (float H x W x 3, or the native dtype), in this photo's depth/mode."""
        a = np.asarray(rgb)
        if a.dtype.kind == "f":
            peak = 65535.0 if self.bits == 16 else 255.0
            if self.gray:
                a = a.mean(axis=2, keepdims=True)
            a = np.round(np.clip(a, 0, 1) * peak).astype(self.color.dtype)
        elif self.gray and a.shape[2] == 3:
            a = np.round(a.astype(np.float32).mean(axis=2, keepdims=True)).astype(self.color.dtype)
        return Photo(a, self.alpha, self.icc, self.exif, dict(self.extra))


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an H x W [x C] array, as Pillow's exif_transpose does."""
    if orientation == 2:
        return a[:, ::-1]
    if orientation == 3:
        return a[::-1, ::-1]
    if orientation == 4:
        return a[::-1]
    if orientation == 5:
        return a.swapaxes(0, 1)
    if orientation == 6:
        return a.swapaxes(0, 1)[:, ::-1]
    if orientation == 7:
        return a.swapaxes(0, 1)[::-1, ::-1]
    if orientation == 8:
        return a.swapaxes(0, 1)[::-1]
    return a


def _split(a: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if a.ndim == 2:
        return a[:, :, None], None
    if a.shape[2] in (2, 4):
        return a[:, :, :-1], a[:, :, -1]
    return a, None


def read_photo(path: str | Path) -> Photo:
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            icc = im.info.get("icc_profile")
            exif = Image.Exif()
            exif.load(im.getexif().tobytes())  # a copy: resetting orientation must not touch the image
            orientation = int(exif.get(_ORIENTATION, 1) or 1)
            if orientation != 1:
                exif[_ORIENTATION] = 1
            exif_bytes = exif.tobytes() if len(exif) else None
            arr = _sixteen_bit(path, im)
            if arr is None:
                if im.mode in ("I;16", "I;16B", "I;16L"):
                    arr = np.asarray(im).astype(np.uint16)
                elif im.mode in ("L", "LA", "RGB", "RGBA"):
                    arr = np.asarray(im)
                elif im.mode == "P" and "transparency" in im.info:
                    arr = np.asarray(im.convert("RGBA"))
                else:
                    arr = np.asarray(im.convert("RGB"))
            arr = _orient(arr, orientation)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{path.name}: not a readable image ({e})") from None
    color, alpha = _split(np.ascontiguousarray(arr))
    return Photo(np.ascontiguousarray(color), alpha, icc, exif_bytes, {"format": path.suffix.lower()})


def _sixteen_bit(path: Path, im: Image.Image) -> np.ndarray | None:
    """The pixels of a 16-bit RGB(A)/gray PNG or TIFF, which Pillow would reduce to 8 bits; else None."""
    suffix = path.suffix.lower()
    if suffix == ".png" and im.mode not in ("I;16", "I;16B", "I;16L"):
        import png

        r = png.Reader(filename=str(path))
        w, h, rows, info = r.asDirect()
        if info["bitdepth"] != 16:
            return None
        planes = info["planes"]
        a = np.vstack([np.asarray(row, np.uint16) for row in rows]).reshape(h, w, planes)
        return a[:, :, 0] if planes == 1 else a
    if suffix in (".tif", ".tiff"):
        import tifffile

        a = tifffile.imread(str(path))
        if a.dtype == np.uint16:
            return a
    return None


def write_photo(photo: Photo, path: str | Path, quality: int = 95) -> None:
    """Write ``photo`` atomically; its format is chosen by ``path``'s suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in PHOTO_SUFFIXES:
        raise ImageError(f"unsupported output format {suffix!r} (use {', '.join(PHOTO_SUFFIXES)})")
    a = photo.color if photo.alpha is None else np.concatenate([photo.color, photo.alpha[:, :, None]], axis=2)
    if a.shape[2] == 1:
        a = a[:, :, 0]
    with atomic_path(path) as tmp:
        if photo.bits == 16 and suffix == ".png" and a.ndim == 3:
            import png

            planes = a.shape[2]
            png.Writer(a.shape[1], a.shape[0], greyscale=planes <= 2, alpha=planes in (2, 4), bitdepth=16).write(
                open(tmp, "wb"), a.reshape(a.shape[0], -1).tolist()
            )
        elif photo.bits == 16 and suffix in (".tif", ".tiff"):
            import tifffile

            tifffile.imwrite(tmp, a, photometric="rgb" if a.ndim == 3 and a.shape[2] >= 3 else "minisblack")
        else:
            if photo.bits == 16 and suffix == ".png":
                im = Image.fromarray(a.astype(np.uint16), "I;16")
            else:
                a8 = a if photo.bits == 8 else np.round(a / 257.0).astype(np.uint8)
                im = Image.fromarray(a8)
                if suffix in (".jpg", ".jpeg") and im.mode in ("RGBA", "LA"):
                    im = im.convert("RGB" if im.mode == "RGBA" else "L")  # JPEG has no alpha
            kw = {}
            if photo.icc:
                kw["icc_profile"] = photo.icc
            if photo.exif and suffix in (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff"):
                kw["exif"] = photo.exif
            if suffix in (".jpg", ".jpeg", ".webp"):
                kw["quality"] = quality
            im.save(tmp, **kw)


def side_by_side(before: Photo, after: Photo, gap: int = 8) -> Photo:
    """A before | after comparison in the photos' own depth and mode (alpha dropped)."""
    b, a = before.color, after.color
    peak = np.iinfo(b.dtype).max
    sep = np.full((b.shape[0], gap, b.shape[2]), peak, b.dtype)
    return Photo(np.concatenate([b, sep, a], axis=1), None, before.icc, None)
