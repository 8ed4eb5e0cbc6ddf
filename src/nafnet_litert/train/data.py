"""Training data: (blurred, sharp) crop pairs from real paired folders and from sharp images blurred on the fly.

Sources
  * **paired folders** in GoPro layout: any ``blur/`` (or ``input/``) directory under a root with a sibling
    ``sharp/`` (or ``target/``) directory; files are matched by name (ignoring the extension). GoPro's
    ``blur_gamma/`` folders are not used.
  * **sharp images** (folders of images, or arrays), blurred with :mod:`.blur` when sampled.
    :func:`bundled_sharp_images` offers scikit-image's bundled photos, so training works with no download.

All images are loaded once and kept in memory as 8-bit arrays (4x smaller than float32; inputs are 8-bit in
practice). A sample is a random square crop, flipped / rotated by a multiple of 90 degrees identically for
blur and sharp. Every random choice comes from the :class:`numpy.random.Generator` passed in, so a batch is a
pure function of the generator's state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, ImageError
from ..facts import PHOTO_SUFFIXES
from ..io.datasets import find_pairs
from ..io.image import read_photo
from ..photo import centre_crop, from_float, to_float
from .blur import BlurSettings, blur_image


@dataclass
class LoadedPair:
    """A (blurred, sharp) image pair loaded into memory, H x W x 3 uint8 (:class:`nafnet_litert.io.datasets.Pair`
    is a pair as paths on disk)."""

    name: str
    blur: np.ndarray
    sharp: np.ndarray


# ----------------------------------------------------------------------------------------------------- loading


def to_u8(img: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 from a uint8, uint16 or float [0, 1] array (gray replicated, alpha dropped), by the
    package's one float <-> integer rule."""
    a = np.asarray(img)
    if a.dtype != np.uint8:
        a = from_float(to_float(a), np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise DataError(f"expected an H x W x C image, got shape {a.shape}")
    if a.shape[2] in (2, 4):
        a = a[:, :, :-1]
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    if a.shape[2] != 3:
        raise DataError(f"expected 1, 3 or 4 channels, got shape {a.shape}")
    return np.ascontiguousarray(a)


def load_pairs(roots: str | Path | Iterable[str | Path], log: Callable[[str], None] | None = None) -> list[LoadedPair]:
    """Load every pair under each root into memory; a root without any pair is an error."""
    roots = [roots] if isinstance(roots, (str, Path)) else list(roots)
    pairs: list[LoadedPair] = []
    for root in roots:
        files = [(p.blur_path, p.sharp_path) for p in find_pairs(root)]  # raises on an empty or broken layout
        for blur_path, sharp_path in _progress(files, f"loading {Path(root).name}"):
            blur, sharp = _load_u8(blur_path), _load_u8(sharp_path)
            if blur.shape != sharp.shape:
                raise DataError(
                    f"{blur_path}: size {blur.shape[1]}x{blur.shape[0]} differs from its sharp image "
                    f"{sharp.shape[1]}x{sharp.shape[0]}"
                )
            pairs.append(LoadedPair(name=str(blur_path.relative_to(root)), blur=blur, sharp=sharp))
        if log:
            log(f"{root}: {len(files)} image pairs")
    return pairs


def load_sharp_folders(
    roots: str | Path | Iterable[str | Path], log: Callable[[str], None] | None = None
) -> list[np.ndarray]:
    """Every image under each folder (recursively) as uint8; a folder without any image is an error."""
    roots = [roots] if isinstance(roots, (str, Path)) else list(roots)
    images: list[np.ndarray] = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"image folder not found: {root}")
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
        if not files:
            raise DataError(f"{root}: no images found ({', '.join(PHOTO_SUFFIXES)})")
        images += [_load_u8(p) for p in _progress(files, f"loading {root.name}")]
        if log:
            log(f"{root}: {len(files)} sharp images")
    return images


def _load_u8(path: Path) -> np.ndarray:
    try:
        return to_u8(read_photo(path).rgb())
    except ImageError as e:
        raise DataError(str(e)) from None


def _progress(items: list, desc: str):
    if len(items) < 50:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="img", leave=False)


#: scikit-image photos that ship inside the wheel (no download): natural RGB photos, then grayscale photos and
#: textures (converted to RGB). Microscopy, astronomy and synthetic images are left out.
BUNDLED_RGB = ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle")
BUNDLED_GRAY = ("camera", "coins", "clock", "brick", "grass", "gravel", "moon", "text")


def bundled_sharp_images(include_gray: bool = True) -> list[np.ndarray]:
    """scikit-image's bundled natural photos as float32 H x W x 3 arrays in [0, 1] (the available ones)."""
    try:
        import skimage.data as skdata
    except ImportError:
        raise DataError("the 'bundled' images need scikit-image (pip install scikit-image)") from None
    names = BUNDLED_RGB + (BUNDLED_GRAY if include_gray else ())
    images = []
    for name in names:
        try:
            img = getattr(skdata, name)()
        except Exception:  # absent from this version, or needs a download (pooch): skip it
            continue
        if isinstance(img, tuple):  # stereo_motorcycle -> (left, right, disparity)
            img = img[0]
        images.append(to_u8(np.asarray(img)).astype(np.float32) / 255.0)
    if not images:
        raise DataError("no bundled scikit-image photos could be loaded")
    return images


# ---------------------------------------------------------------------------------------------------- sampling


def augment(blur: torch.Tensor, sharp: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random rotation by k*90 degrees and horizontal / vertical flips for both C x H x W tensors."""
    k = int(rng.integers(4))
    flip_h, flip_v = bool(rng.random() < 0.5), bool(rng.random() < 0.5)

    def f(x: torch.Tensor) -> torch.Tensor:
        if k:
            x = torch.rot90(x, k, dims=(1, 2))
        if flip_h:
            x = torch.flip(x, dims=(2,))
        if flip_v:
            x = torch.flip(x, dims=(1,))
        return x

    return f(blur), f(sharp)


def _chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float().div_(255.0)


class TrainingData:
    """Random (blurred, sharp) crops from real pairs and/or sharp images blurred on the fly.

    ``real_fraction`` is the probability that a sample comes from a real pair when both kinds are present
    (otherwise whichever kind exists is used). Images smaller than the crop are not sampled.
    """

    def __init__(
        self,
        pairs: Sequence[LoadedPair] = (),
        sharp: Sequence[np.ndarray] = (),
        real_fraction: float = 0.5,
        blur: BlurSettings = BlurSettings(),
        augment: bool = True,
    ) -> None:
        if not 0.0 <= real_fraction <= 1.0:
            raise DataError(f"real fraction must be in [0, 1], got {real_fraction}")
        self.pairs = list(pairs)
        self.sharp = [to_u8(s) for s in sharp]
        if not self.pairs and not self.sharp:
            raise DataError("no training data: give paired folders and/or sharp images to blur")
        self.real_fraction = real_fraction
        self.blur = blur
        self.augment = augment
        self._eligible: dict[int, tuple[list[int], list[int]]] = {}

    def describe(self) -> str:
        parts = []
        if self.pairs:
            parts.append(f"{len(self.pairs)} real pairs")
        if self.sharp:
            parts.append(f"{len(self.sharp)} sharp images blurred on the fly")
        mix = f", {self.effective_real_fraction:.0%} real" if self.pairs and self.sharp else ""
        return " + ".join(parts) + mix

    @property
    def effective_real_fraction(self) -> float:
        if not self.sharp:
            return 1.0
        if not self.pairs:
            return 0.0
        return self.real_fraction

    def eligible(self, crop: int) -> tuple[list[int], list[int]]:
        """Indices of the pairs and sharp images at least ``crop`` x ``crop``; an error when there are none."""
        if crop not in self._eligible:
            real = [i for i, p in enumerate(self.pairs) if min(p.sharp.shape[:2]) >= crop]
            synth = [i for i, s in enumerate(self.sharp) if min(s.shape[:2]) >= crop]
            if not real and not synth:
                raise DataError(f"no training image is at least {crop}x{crop}: use a smaller crop")
            self._eligible[crop] = (real, synth)
        return self._eligible[crop]

    def sample(self, rng: np.random.Generator, crop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One (blurred, sharp) pair of 3 x crop x crop float tensors in [0, 1]."""
        real, synth = self.eligible(crop)
        use_real = bool(real) and (not synth or rng.random() < self.real_fraction)
        if use_real:
            pair = self.pairs[real[int(rng.integers(len(real)))]]
            h, w = pair.sharp.shape[:2]
            y, x = int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))
            blur = _chw(pair.blur[y : y + crop, x : x + crop])
            sharp = _chw(pair.sharp[y : y + crop, x : x + crop])
        else:
            img = self.sharp[synth[int(rng.integers(len(synth)))]]
            blur, sharp = synthetic_crop(img, rng, crop, self.blur)
        if self.augment:
            blur, sharp = augment(blur, sharp, rng)
        return blur.contiguous(), sharp.contiguous()

    def batch(self, rng: np.random.Generator, batch_size: int, crop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``batch_size`` samples stacked as two N x 3 x crop x crop tensors."""
        samples = [self.sample(rng, crop) for _ in range(batch_size)]
        return torch.stack([b for b, _ in samples]), torch.stack([s for _, s in samples])


def synthetic_crop(
    img: np.ndarray, rng: np.random.Generator, crop: int, settings: BlurSettings = BlurSettings()
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random ``crop`` square of a uint8 H x W x 3 image and its synthetic blur (as 3 x crop x crop floats).

    The blur sees real image content around the crop (a margin of half the largest kernel) wherever the image
    has it, so reflect padding only happens at the true image border.
    """
    h, w = img.shape[:2]
    y, x = int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))
    m = settings.max_kernel // 2
    y0, x0 = max(0, y - m), max(0, x - m)
    y1, x1 = min(h, y + crop + m), min(w, x + crop + m)
    window = _chw(img[y0:y1, x0:x1])
    blurred, _ = blur_image(window, rng, settings)
    oy, ox = y - y0, x - x0
    return blurred[:, oy : oy + crop, ox : ox + crop], window[:, oy : oy + crop, ox : ox + crop]


def synthetic_pairs(
    images: Sequence[np.ndarray], seed: int = 0, crop: int | None = 256, settings: BlurSettings = BlurSettings()
) -> list[LoadedPair]:
    """Fixed (blurred, sharp) pairs made from sharp images (centre crops of ``crop`` when given), for a
    validation set when no real one exists. The same seed gives the same pairs."""
    rng = np.random.default_rng([seed, 0x5EED])
    pairs = []
    for i, img in enumerate(images):
        u8 = to_u8(img)
        if crop is not None:
            u8 = centre_crop(u8, crop, crop)
        sharp = _chw(u8)
        blurred, _ = blur_image(sharp, rng, settings)
        to_hwc = lambda t: np.round(t.permute(1, 2, 0).numpy() * 255).astype(np.uint8)  # noqa: E731
        pairs.append(LoadedPair(name=f"synthetic_{i}", blur=to_hwc(blurred), sharp=u8))
    return pairs
