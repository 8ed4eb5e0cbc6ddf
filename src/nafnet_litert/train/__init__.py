"""Training a (small) NAFNet in PyTorch: synthetic motion blur, paired data, a resumable trainer."""

from .blur import BlurSettings, apply_kernel, blur_image, camera_shake_kernel, linear_kernel, random_kernel
from .data import DataError, LoadedPair, TrainingData, bundled_sharp_images, load_pairs, load_sharp_folders
from .options import TRAIN_CONFIGS, TrainOptions, resolve_config, train_main
from .state import TrainState
from .trainer import TrainError, TrainResult, psnr_loss, train, train_step, validation_psnr

__all__ = [
    "TRAIN_CONFIGS",
    "BlurSettings",
    "DataError",
    "LoadedPair",
    "TrainError",
    "TrainResult",
    "TrainingData",
    "apply_kernel",
    "blur_image",
    "bundled_sharp_images",
    "camera_shake_kernel",
    "linear_kernel",
    "load_pairs",
    "load_sharp_folders",
    "psnr_loss",
    "random_kernel",
    "train",
    "train_main",
    "TrainOptions",
    "TrainState",
    "resolve_config",
    "train_step",
    "validation_psnr",
]
