"""Image files <-> :class:`~nafnet_litert.photo.Photo`: the one reader and the one writer of the package (deblur,
eval, training data, audit inputs and the demo all go through here). The pixel rules (float <-> integer, gray) and
the :class:`Photo` type itself live one floor lower, in :mod:`nafnet_litert.photo`.

* **Bit depth is kept and decides the scale.** 8-bit files give uint8, 16-bit PNG/TIFF give uint16 (pypng and
  tifffile read what Pillow would cut to 8 bits); floats are ``value / 255`` or ``value / 65535`` by the file's
  depth, never by its pixel values, so a dark 16-bit image stays dark. Output is written at the photo's depth.
* Alpha is carried through untouched.
* EXIF orientation is applied on reading; EXIF (with orientation reset) and the ICC profile are kept on writing
  where Pillow can (JPEG, PNG, WebP, 8-bit TIFF).
* Files are written to a temporary name in the target folder and renamed when complete.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import ImageError
from ..facts import DEFAULT_MAX_PIXELS, PHOTO_SUFFIXES
from ..photo import Photo, from_float, photo_to_array, split_alpha, to_float
from .files import atomic_path

_ORIENTATION = 0x0112


def _readable_exif(im: Image.Image, notes: list[str]) -> Image.Exif:
    """A copy of ``im``'s EXIF holding every tag that can be written back; a damaged tag (a phone or editor that
    wrote a wrong type or count) is dropped with a note, never a refused photo."""
    exif = Image.Exif()
    try:
        source = im.getexif()
        exif.load(source.tobytes())
        return exif
    except Exception:  # noqa: BLE001 - Pillow raises struct.error, ValueError, TypeError...: salvage tag by tag
        pass
    exif = Image.Exif()
    dropped = []
    try:
        items = list(source.items())
    except Exception:  # noqa: BLE001
        items = []
    for tag, value in items:
        one = Image.Exif()
        try:
            one[tag] = value
            one.tobytes()
        except Exception:  # noqa: BLE001
            dropped.append(tag)
            continue
        exif[tag] = value
    if dropped or not items:
        what = ", ".join(str(t) for t in dropped) if dropped else "all"
        notes.append(f"damaged EXIF: tag(s) {what} dropped (the pixels are fine)")
    return exif


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


#: EXIF/TIFF tags that describe a photo (kept on writing); layout tags (strips, compression, predictor, sample
#: format, ...) describe one file's encoding and are never copied onto new data.
DESCRIPTIVE_TAGS = (0x010E, 0x010F, 0x0110, 0x0131, 0x0132, 0x013B, 0x8298)
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825


def read_photo(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Photo:
    """Decode a photo with one policy for every format, mode, depth, layout and page count:

    * PNG: Pillow, and pypng for 16-bit (which Pillow cuts to 8 bits); TIFF: tifffile (with imagecodecs, so LZW,
      Deflate and JPEG compression work), planar layouts rearranged, the first page of a multi-page file (with a
      note saying so), MINISWHITE inverted, palettes applied; JPEG/WebP/others: Pillow.
    * Depths: 8-bit -> uint8, 16-bit -> uint16, 1-bit -> uint8 0/255, float in [0, 1] -> uint16. Other integer
      depths and out-of-range floats are refused with one line.
    * Modes: gray, gray+alpha, RGB, RGBA kept; palette -> RGB(A); CMYK, YCbCr, LAB -> RGB.
    * EXIF orientation applied (and reset in the kept EXIF); ICC kept.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image not found: {path}")
    notes: list[str] = []
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):  # TIFF / BigTIFF: tifffile reads it all
            arr, icc, exif = _read_tiff(path, notes, max_pixels)
        else:
            with Image.open(path) as im:
                _check_pixels(path, *im.size, max_pixels)
                frames = getattr(im, "n_frames", 1)
                if frames > 1:  # animated WebP/PNG/GIF-like: one still, said out loud (as for multi-page TIFF)
                    notes.append(f"animated: frame 1 of {frames} used (the output is a still)")
                icc = im.info.get("icc_profile")
                exif = _readable_exif(im, notes)  # a copy: resetting orientation must not touch the image
                arr = _sixteen_bit_png(path, im) if im.format == "PNG" else None
                if arr is None and im.mode == "CMYK" and icc:
                    arr, icc = _cmyk_to_srgb(im, icc, notes)
                if arr is None:
                    arr = _pillow_pixels(path, im)
        orientation = exif.get(_ORIENTATION, 1)
        if not isinstance(orientation, int) or orientation not in range(1, 9):
            if _ORIENTATION in exif:
                notes.append(f"EXIF orientation {orientation!r} is not one of 1..8: the pixels are used as stored")
            orientation = 1
        if _ORIENTATION in exif:
            exif[_ORIENTATION] = 1
        exif_bytes = exif.tobytes() if len(exif) else None
        arr = _orient(arr, orientation)
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageError(f"{path.name}: refused as a possible decompression bomb ({e}); raise --max-megapixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, IndexError, KeyError, TypeError, EOFError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageError(f"{path.name}: not a readable image ({msg})") from None
    color, alpha = split_alpha(np.ascontiguousarray(arr))
    if color.shape[2] not in (1, 3):
        raise ImageError(f"{path.name}: {color.shape[2]} colour channels (only gray and RGB are supported)")
    return Photo(np.ascontiguousarray(color), alpha, icc, exif_bytes, {"format": path.suffix.lower()}, notes)


def _check_pixels(path: Path, w: int, h: int, max_pixels: int | None) -> None:
    if max_pixels and w * h > max_pixels:
        raise ImageError(
            f"{path.name}: {w}x{h} is {w * h / 1e6:.0f} megapixels, above the limit of {max_pixels / 1e6:.0f} "
            "(raise it with --max-megapixels)"
        )


def _cmyk_to_srgb(im: Image.Image, icc: bytes, notes: list[str]) -> tuple[np.ndarray | None, bytes | None]:
    """A CMYK photo with its own (CMYK) profile: converted to sRGB through the profile (LittleCMS), so the output
    carries an sRGB profile instead of a CMYK one no RGB reader can use. (None, None) when the profile is unusable:
    then Pillow's plain conversion is used and no profile is kept."""
    import io

    from PIL import ImageCms

    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
        rgb = ImageCms.profileToProfile(im, src, srgb, outputMode="RGB")
        return np.asarray(rgb), srgb.tobytes()
    except (ImageCms.PyCMSError, OSError, ValueError):
        notes.append("its CMYK colour profile could not be used: converted without it")
        return None, None


def _pillow_pixels(path: Path, im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        return np.asarray(im)
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16)
    if mode == "1":
        return np.asarray(im.convert("L"))
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        return np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
    if mode == "F":
        return _float_to_u16(np.asarray(im), path)
    if mode in ("I", "I;32"):
        raise ImageError(f"{path.name}: 32-bit integer pixels are not supported (use 8 or 16 bits per channel)")
    return np.asarray(im.convert("RGBA" if "A" in im.getbands() else "RGB"))  # CMYK, YCbCr, LAB, HSV, RGBX, ...


def _float_to_u16(a: np.ndarray, path: Path) -> np.ndarray:
    a = np.asarray(a, np.float64)
    if not np.isfinite(a).all() or a.min() < -1e-6 or a.max() > 1 + 1e-6:
        raise ImageError(
            f"{path.name}: floating-point pixels must be in [0, 1] (found {np.nanmin(a):.4g}..{np.nanmax(a):.4g})"
        )
    return np.round(np.clip(a, 0, 1) * 65535).astype(np.uint16)


def _read_tiff(path: Path, notes: list[str], max_pixels: int | None) -> tuple[np.ndarray, bytes | None, Image.Exif]:
    import tifffile

    with tifffile.TiffFile(path) as tf:
        pages = len(tf.pages)
        page = cast(tifffile.TiffPage, tf.pages[0])  # the first page is always a TiffPage, never a TiffFrame
        _check_pixels(path, page.imagewidth, page.imagelength, max_pixels)
        if pages > 1:
            notes.append(f"page 1 of {pages} used")
        exif = Image.Exif()
        for tag in DESCRIPTIVE_TAGS + (_ORIENTATION,):
            t = page.tags.get(tag)
            if t is not None and isinstance(t.value, (str, int)):
                exif[tag] = t.value
        a = page.asarray()
        if a.ndim == 3 and int(page.planarconfig) == 2:  # SEPARATE: samples first
            a = np.moveaxis(a, 0, -1)
        if a.ndim > 3 or (a.ndim == 3 and a.shape[2] > 4 and int(page.planarconfig) != 2):
            raise ImageError(f"{path.name}: unsupported TIFF layout (array {a.shape})")
        photometric = int(page.photometric)
        if photometric == 3 and page.colormap is not None:  # PALETTE: 16-bit colormap, 3 x 2**bits
            cmap = np.asarray(page.colormap)
            a = np.moveaxis(cmap[:, a], 0, -1)
            a = a if cmap.max() > 255 else a.astype(np.uint8)
        if a.dtype == np.bool_:
            a = a.astype(np.uint8) * 255
        if a.dtype.kind == "f":
            a = _float_to_u16(a, path)
        elif a.dtype not in (np.uint8, np.uint16):
            raise ImageError(f"{path.name}: {a.dtype} TIFF pixels are not supported (use 8 or 16 bits per channel)")
        if photometric == 0:  # MINISWHITE: 0 is white
            a = np.iinfo(a.dtype).max - a
        if a.ndim == 3 and a.shape[2] > 4:
            a = a[:, :, :4]
        if a.ndim == 3 and photometric == 5:  # SEPARATED (CMYK)
            cmyk = Image.fromarray(a[:, :, :4] if a.dtype == np.uint8 else (a[:, :, :4] >> 8).astype(np.uint8), "CMYK")
            a = np.asarray(cmyk.convert("RGB"))
        icc_tag = page.tags.get(34675)
        icc = bytes(icc_tag.value) if icc_tag is not None else None
    return a, icc, exif


def _sixteen_bit_png(path: Path, im: Image.Image) -> np.ndarray | None:
    """The pixels of a 16-bit PNG, which Pillow reduces to 8 bits for colour; else None."""
    if im.mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16)
    import png

    w, h, rows, info = png.Reader(filename=str(path)).asDirect()
    if info["bitdepth"] != 16:
        return None
    planes = info["planes"]
    a = np.vstack([np.asarray(row, np.uint16) for row in rows]).reshape(h, w, planes)
    return a[:, :, 0] if planes == 1 else a


def write_photo(photo: Photo, path: str | Path, quality: int = 95) -> None:
    """Write ``photo`` atomically; its format is chosen by ``path``'s suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in PHOTO_SUFFIXES:
        raise ImageError(f"unsupported output format {suffix!r} (use {', '.join(PHOTO_SUFFIXES)})")
    a = photo_to_array(photo, gray_2d=True)
    with atomic_path(path) as tmp:
        if photo.bits == 16 and suffix == ".png":  # pypng: Pillow cannot write 16-bit RGB, nor (12+) 16-bit gray
            import png

            a = a if a.ndim == 3 else a[:, :, None]
            planes = a.shape[2]
            writer = png.Writer(a.shape[1], a.shape[0], greyscale=planes <= 2, alpha=planes in (2, 4), bitdepth=16)
            with open(tmp, "wb") as f:
                writer.write(f, a.reshape(a.shape[0], -1).tolist())
            if photo.icc or photo.exif:
                _png_metadata(tmp, photo.icc, photo.exif)
        elif photo.bits == 16 and suffix in (".tif", ".tiff"):
            import tifffile

            tifffile.imwrite(
                tmp, a, photometric="rgb" if a.ndim == 3 and a.shape[2] >= 3 else "minisblack",
                iccprofile=photo.icc, extratags=_descriptive_tiff_tags(photo.exif), metadata=None, software=False,
            )  # fmt: skip
        else:
            im = Image.fromarray(a if photo.bits == 8 else from_float(to_float(a), np.uint8))
            if suffix in (".jpg", ".jpeg") and im.mode in ("RGBA", "LA"):  # JPEG has no alpha: composite on white,
                rgba = im.convert("RGBA")  # never reveal the colours under transparent pixels
                flat = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), rgba).convert("RGB")
                im = flat if im.mode == "RGBA" else flat.convert("L")
            kw = {}
            if photo.icc:
                kw["icc_profile"] = photo.icc
            if photo.exif and suffix in (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff"):
                kw["exif"] = photo.exif
            if suffix in (".jpg", ".jpeg", ".webp"):
                kw["quality"] = quality
            im.save(tmp, **kw)


def _png_metadata(path: Path, icc: bytes | None, exif: bytes | None) -> None:
    """Insert iCCP (the colour profile) and eXIf chunks before the image data of a PNG pypng wrote."""
    import zlib

    import png

    chunks = list(png.Reader(filename=str(path)).chunks())
    extra = []
    if icc:
        extra.append((b"iCCP", b"ICC profile\0\0" + zlib.compress(icc)))
    if exif:
        extra.append((b"eXIf", exif[6:] if exif.startswith(b"Exif\0\0") else exif))
    at = next(i for i, (kind, _) in enumerate(chunks) if kind == b"IDAT")
    with open(path, "wb") as f:
        png.write_chunks(f, chunks[:at] + extra + chunks[at:])


def _descriptive_tiff_tags(exif: bytes | None) -> list[tuple]:
    """The descriptive tags (:data:`DESCRIPTIVE_TAGS`: camera, date, author...) of ``exif`` as tifffile extratags."""
    if not exif:
        return []
    e = Image.Exif()
    e.load(exif)
    return [(tag, "s", 0, str(e[tag]), True) for tag in DESCRIPTIVE_TAGS if isinstance(e.get(tag), str) and e[tag]]


def side_by_side(*photos: Photo, gap: int = 8) -> Photo:
    """Photos of one height and depth next to each other, white gaps between (alpha dropped; gray shown as RGB
    when the photos mix gray and colour)."""
    colors = [p.color for p in photos]
    if len({c.shape[2] for c in colors}) > 1:
        colors = [np.repeat(c, 3, axis=2) if c.shape[2] == 1 else c for c in colors]
    first = colors[0]
    sep = np.full((first.shape[0], gap, first.shape[2]), np.iinfo(first.dtype).max, first.dtype)
    parts = [colors[0]]
    for c in colors[1:]:
        parts += [sep, c]
    return Photo(np.concatenate(parts, axis=1), None, photos[0].icc, None)


def load_image(path: str | Path, channels: int = 3) -> np.ndarray:
    """float32 H x W x ``channels`` in [0, 1] from any photo :func:`read_photo` reads (16 bits kept)."""
    return read_photo(path).float(channels)


def save_image(arr: np.ndarray, path: str | Path, bits: int = 8) -> None:
    """Write float H x W x C (C = 1 or 3) in [0, 1] atomically at ``bits`` (8 or 16) per channel."""
    a = np.asarray(arr)
    if a.ndim == 2:
        a = a[:, :, None]
    write_photo(Photo(from_float(a, np.uint16 if bits == 16 else np.uint8)), path)

