"""Facts the whole package shares, each defined once (the base floor: imports nothing of the package).

The CLI's ``choices`` and every check derive from these; change a fact here and nowhere else.
"""

from __future__ import annotations

from typing import Literal, get_args

Precision = Literal["fp16", "fp32", "int8"]
#: Weight precisions an export can have (int8: weights only, dequantized to float on the device).
PRECISIONS: tuple[str, ...] = get_args(Precision)
#: Precisions LiteRT's GPU accelerator computes in.
GPU_PRECISIONS: tuple[str, ...] = ("fp16", "fp32")

Backend = Literal["litert", "torch"]
#: What runs the model: the exported .tflite, or the PyTorch reference network.
BACKENDS: tuple[str, ...] = get_args(Backend)

#: Photo formats read and written (lower case, with the dot).
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")
#: Video formats read, and the ones written (H.264 in these containers).
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
VIDEO_OUT_SUFFIXES = (".mp4", ".mov", ".mkv", ".m4v")

#: Tensor layouts an export can have: NCHW (what Android's CompiledModel users feed) or NHWC.
LAYOUTS = ("NCHW", "NHWC")

#: The tile size of deblur's default path (the size the bundled model is exported at).
DEFAULT_TILE = 256
#: Chosen by ``nafnet-litert tiling-study`` on the held-out GoPro frames with the bundled model:
#: at 0 px the tile borders show (seam ratio 1.45 against 1.04 for the whole-image output on the same lines); from
#: 16 px they match the whole-image output, and PSNR vs sharp moves by < 0.02 dB between 16 and 96 px.
DEFAULT_OVERLAP = 32

#: Pixels above which a photo is refused before decoding (a decompression bomb guard): Pillow's own limit.
#: ``deblur --max-megapixels`` raises it (and Pillow's with it, in the CLI's process).
DEFAULT_MAX_PIXELS = 178_956_970
