"""Image normalisation for the network input, its inverse for figures, and paired resizing.

Sizes are always ``(width, height)`` tuples, as in PIL and in the params ("1280x720").
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from globallocal.errors import UserError

#: BGR channel means of the Caffe DeepLab / ResNet weights (ADVENT's IMG_MEAN); no std scaling.
CAFFE_BGR_MEAN = (104.00698793, 116.66876762, 122.67891434)
#: torchvision ImageNet statistics, applied to RGB scaled to [0, 1].
IMAGENET_RGB_MEAN = (0.485, 0.456, 0.406)
IMAGENET_RGB_STD = (0.229, 0.224, 0.225)
#: TensorFlow EfficientNet-Lite's preprocessing (its MEAN_RGB / STDDEV_RGB), in pixel units: about [-1, 1].
TF_LITE_MEAN = 127.0
TF_LITE_STD = 128.0
MAX_PIXEL_VALUE = 255.0

NORMALIZATIONS = ("caffe_bgr", "imagenet", "tf_lite")


def check_normalization(normalization: str) -> None:
    """Raise UserError unless ``normalization`` is one of NORMALIZATIONS."""
    if normalization not in NORMALIZATIONS:
        raise UserError(
            f"unknown normalization '{normalization}'; use one of: {', '.join(NORMALIZATIONS)}."
        )


def to_input_tensor(rgb: np.ndarray, normalization: str) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 network input.

    ``caffe_bgr``: channels reordered to BGR, Caffe mean subtracted, values stay in pixel units.
    ``imagenet``: RGB in [0, 1], ImageNet mean subtracted and divided by the std.
    ``tf_lite``: RGB minus 127, divided by 128 (EfficientNet-Lite's TensorFlow-trained weights).
    """
    check_normalization(normalization)
    pixels = np.asarray(rgb, dtype=np.float32)
    if normalization == "caffe_bgr":
        normalized = pixels[:, :, ::-1] - np.asarray(CAFFE_BGR_MEAN, dtype=np.float32)
    elif normalization == "tf_lite":
        normalized = (pixels - TF_LITE_MEAN) / TF_LITE_STD
    else:
        mean = np.asarray(IMAGENET_RGB_MEAN, dtype=np.float32)
        std = np.asarray(IMAGENET_RGB_STD, dtype=np.float32)
        normalized = (pixels / MAX_PIXEL_VALUE - mean) / std
    return torch.from_numpy(np.ascontiguousarray(normalized.transpose(2, 0, 1)))


def to_display_rgb(image: torch.Tensor, normalization: str) -> np.ndarray:
    """(3, H, W) network input -> (H, W, 3) uint8 RGB, the inverse of to_input_tensor (figures)."""
    check_normalization(normalization)
    pixels = image.detach().to("cpu", torch.float32).numpy().transpose(1, 2, 0)
    if normalization == "caffe_bgr":
        rgb = (pixels + np.asarray(CAFFE_BGR_MEAN, dtype=np.float32))[:, :, ::-1]
    elif normalization == "tf_lite":
        rgb = pixels * TF_LITE_STD + TF_LITE_MEAN
    else:
        mean = np.asarray(IMAGENET_RGB_MEAN, dtype=np.float32)
        std = np.asarray(IMAGENET_RGB_STD, dtype=np.float32)
        rgb = (pixels * std + mean) * MAX_PIXEL_VALUE
    return np.clip(np.rint(rgb), 0, MAX_PIXEL_VALUE).astype(np.uint8)


def resize_image(rgb: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 -> (height, width, 3) uint8, bicubic; unchanged if already that size."""
    width, height = size_wh
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    resized = Image.fromarray(rgb).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(resized, dtype=np.uint8)


def resize_label(label: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 ids -> (height, width) uint8, nearest neighbour so no new id appears."""
    width, height = size_wh
    if label.shape[1] == width and label.shape[0] == height:
        return label
    resized = Image.fromarray(label).resize((width, height), Image.Resampling.NEAREST)
    return np.asarray(resized, dtype=np.uint8)
