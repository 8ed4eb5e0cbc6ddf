"""Training a (small) NAFNet in PyTorch: synthetic motion blur, paired data, a resumable trainer."""

from .blur import BlurSettings, apply_kernel, blur_image, camera_shake_kernel, linear_kernel, random_kernel
from .data import DataError, LoadedPair, TrainingData, bundled_sharp_images, load_pairs, load_sharp_folders
from .trainer import TRAIN_CONFIGS, TrainError, TrainOptions, TrainResult, evaluate, psnr_loss, train, train_main

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
    "evaluate",
    "linear_kernel",
    "load_pairs",
    "load_sharp_folders",
    "psnr_loss",
    "random_kernel",
    "train",
    "train_main",
    "TrainOptions",
]
