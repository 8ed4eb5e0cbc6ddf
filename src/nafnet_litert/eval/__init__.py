"""Paper-exact evaluation of NAFNet restorations (GoPro deblurring): metrics, dataset pairs, runner, and the demo
(:mod:`.demo`: the bundled model on a bundled GoPro pair)."""

from ..io.datasets import DatasetError, Pair, find_pairs
from .evaluate import EvalError, EvalResult, evaluate
from ..metrics import psnr, ssim_basicsr3d, ssim_standard, to_uint8

__all__ = [
    "DatasetError",
    "EvalError",
    "EvalResult",
    "Pair",
    "evaluate",
    "find_pairs",
    "psnr",
    "ssim_basicsr3d",
    "ssim_standard",
    "to_uint8",
]
