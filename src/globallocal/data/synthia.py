"""SYNTHIA-RAND-CITYSCAPES: ``RGB/NNNNNNN.png`` with 16-bit 3-channel ``GT/LABELS/NNNNNNN.png``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from globallocal.data.file_lists import SYNTHIA_IMAGE_DIR, SYNTHIA_LABEL_DIR, list_synthia
from globallocal.data.images import read_unchanged
from globallocal.data.labels import synthia_to_train_id_lut
from globallocal.data.segmentation_dataset import SegmentationDataset
from globallocal.errors import UserError

#: The class id is in the R channel, which OpenCV (B, G, R order) puts last; G holds instance ids.
CLASS_ID_CHANNEL = 2
LABEL_CHANNELS = 3
#: Largest class id in SYNTHIA-RAND-CITYSCAPES labels (22 = lane marking).
SYNTHIA_MAX_CLASS_ID = 22
_SYNTHIA_TO_TRAIN_ID = synthia_to_train_id_lut()


def read_synthia_train_ids(path: Path, data: bytes | None = None) -> np.ndarray:
    """Read a SYNTHIA 16-bit 3-channel label PNG as (H, W) uint8 trainIds (255 = ignore); from ``data``,
    the file's bytes, when the caller has read them."""
    pixels = read_unchanged(path, data)
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if pixels.dtype != np.uint16 or channels != LABEL_CHANNELS:
        bits = pixels.dtype.itemsize * 8
        raise UserError(
            f"{path}: SYNTHIA label must be a 16-bit 3-channel PNG, got {bits}-bit "
            f"{channels}-channel; use the original GT/LABELS files of SYNTHIA-RAND-CITYSCAPES."
        )
    class_ids = pixels[:, :, CLASS_ID_CHANNEL]
    largest = int(class_ids.max())
    if largest > SYNTHIA_MAX_CLASS_ID:
        raise UserError(f"{path}: class id {largest} is out of range (SYNTHIA ids are 0..{SYNTHIA_MAX_CLASS_ID})")
    return _SYNTHIA_TO_TRAIN_ID[class_ids]


class SynthiaDataset(SegmentationDataset):
    """SYNTHIA-RAND-CITYSCAPES images with trainId labels (255 = ignore).

    ``names`` None lists every image under ``<root>/RGB``. ``image_size`` is (width, height).
    """

    def __init__(
        self,
        root: Path,
        names: list[str] | None = None,
        image_size: tuple[int, int] | None = (1280, 760),
        normalization: str = "caffe_bgr",
        resize_label: bool = True,
    ) -> None:
        if names is None:
            names = list_synthia(root)
        super().__init__(root, names, image_size, normalization, resize_label)

    def image_path(self, index: int) -> Path:
        return self.root / SYNTHIA_IMAGE_DIR / self.names[index]

    def label_path(self, index: int) -> Path:
        return self.root / SYNTHIA_LABEL_DIR / self.names[index]

    def read_train_ids(self, index: int) -> np.ndarray:
        return read_synthia_train_ids(self.label_path(index))
