"""Tiny copies of the real dataset layouts, in their exact file formats (docs/method.md, "Data formats").

GTA5: ``images/NNNNN.png`` RGB + ``labels/NNNNN.png`` 8-bit palette PNGs of Cityscapes labelIds (one
pair with a smaller label, one blank image, as the real set has). SYNTHIA-RAND-CITYSCAPES: ``RGB/`` +
``GT/LABELS/`` 16-bit 3-channel PNGs with the class id in R. Cityscapes: ``leftImg8bit`` and
``gtFine/*_gtFine_labelIds.png`` in city folders. Labels are horizontal bands of a few classes; the
image colour follows the class, so a few training iterations have something to learn.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

#: Cityscapes labelIds drawn as bands, top to bottom: sky, building, car, road; 0 (unlabeled) between.
BAND_LABEL_IDS = (23, 11, 0, 26, 7)
#: SYNTHIA class ids of the same bands: sky 1, building 2, void 0, car 8, road 3.
BAND_SYNTHIA_IDS = (1, 2, 0, 8, 3)
BAND_RGB = ((70, 130, 180), (70, 70, 70), (0, 0, 0), (0, 0, 142), (128, 64, 128))
GTA5_SIZE = (48, 27)  # (width, height), GTA5's 1914x1052 aspect
CITYSCAPES_SIZE = (48, 24)
SYNTHIA_SIZE = (48, 28)


def bands(width: int, height: int, values, index: int, dtype=np.uint8) -> np.ndarray:
    """(height, width) map of horizontal bands of ``values``; ``index`` shifts the band borders."""
    rows = (np.arange(height) * len(values) + index) // height
    return np.asarray(values, dtype=dtype)[np.clip(rows, 0, len(values) - 1)][:, None].repeat(width, axis=1)


def band_image(width: int, height: int, index: int) -> np.ndarray:
    rng = np.random.default_rng(index)
    rgb = np.asarray(BAND_RGB, dtype=np.int16)[bands(width, height, range(len(BAND_RGB)), index)]
    return np.clip(rgb + rng.integers(-10, 11, rgb.shape), 0, 255).astype(np.uint8)


def save_palette_label(path: Path, label_ids: np.ndarray) -> None:
    """8-bit 'P' PNG as GTA5 ships it: pixel = palette index = labelId."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.frombytes("P", (label_ids.shape[1], label_ids.shape[0]), label_ids.tobytes())
    image.putpalette([(7 * index + 40 * channel) % 256 for index in range(256) for channel in range(3)])
    image.save(path)


def save_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)


def save_synthia_label(path: Path, class_ids: np.ndarray) -> None:
    """16-bit 3-channel PNG in OpenCV (B, G, R) order: class id in R, instance ids in G."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.stack([np.zeros_like(class_ids), class_ids + 300, class_ids], axis=2).astype(np.uint16)
    assert cv2.imwrite(str(path), pixels)


def make_gta5(root: Path, count: int = 4, mismatched: int | None = 1, blank: int | None = 2) -> Path:
    """GTA5 layout; image ``mismatched`` gets a label of another size, image ``blank`` is all black."""
    width, height = GTA5_SIZE
    for index in range(count):
        name = f"{index + 1:05d}.png"
        rgb = band_image(width, height, index)
        if index == blank:
            rgb = np.zeros_like(rgb)
        label_w, label_h = (width - 6, height - 3) if index == mismatched else (width, height)
        save_rgb(root / "images" / name, rgb)
        save_palette_label(root / "labels" / name, bands(label_w, label_h, BAND_LABEL_IDS, index))
    return root


def make_synthia(root: Path, count: int = 4) -> Path:
    width, height = SYNTHIA_SIZE
    for index in range(count):
        name = f"{index:07d}.png"
        save_rgb(root / "RGB" / name, band_image(width, height, index))
        save_synthia_label(root / "GT" / "LABELS" / name, bands(width, height, BAND_SYNTHIA_IDS, index, np.uint16))
    return root


CITIES = {"train": ("aachen", "bremen"), "val": ("frankfurt", "lindau")}


def cityscapes_files(root: Path, split: str, index: int) -> tuple[Path, Path]:
    city = CITIES[split][index % 2]
    stem = f"{city}_{index:06d}_000019"
    return (root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png",
            root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png")


def make_cityscapes(root: Path, train: int = 4, val: int = 3) -> Path:
    width, height = CITYSCAPES_SIZE
    for split, count in (("train", train), ("val", val)):
        for index in range(count):
            image_path, label_path = cityscapes_files(root, split, index)
            save_rgb(image_path, band_image(width, height, index + 7))
            label_path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(bands(width, height, BAND_LABEL_IDS, index + 7)).save(label_path)
    return root
