"""Cityscapes: ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` images with
``gtFine/<split>/<city>/*_gtFine_labelIds.png`` 8-bit labelId PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from globallocal.data.file_lists import (
    CITYSCAPES_IMAGE_DIR,
    CITYSCAPES_IMAGE_SUFFIX,
    CITYSCAPES_LABEL_DIR,
    CITYSCAPES_LABEL_SUFFIX,
    check_cityscapes_split,
    list_cityscapes,
)
from globallocal.data.images import read_label_ids
from globallocal.data.labels import MAX_LABEL_ID, label_id_to_train_id_lut
from globallocal.data.segmentation_dataset import SegmentationDataset
from globallocal.errors import UserError

_LABEL_ID_TO_TRAIN_ID = label_id_to_train_id_lut()


def read_cityscapes_train_ids(path: Path, data: bytes | None = None) -> np.ndarray:
    """Read an 8-bit Cityscapes labelId PNG ('L' or palette 'P') as (H, W) uint8 trainIds (from ``data``,
    the file's bytes, when the caller has read them).

    Also serves GTA5, whose labels are Cityscapes labelIds. A value above the largest Cityscapes
    labelId means the file is not a labelId map (e.g. a colour or trainId rendering).
    """
    label_ids = read_label_ids(path, data)
    largest = int(label_ids.max())
    if largest > MAX_LABEL_ID:
        raise UserError(
            f"{path}: pixel value {largest} is not a Cityscapes labelId (0..{MAX_LABEL_ID}); "
            "use the dataset's original labelId files."
        )
    return _LABEL_ID_TO_TRAIN_ID[label_ids]


def label_path_for(root: Path, split: str, name: str) -> Path:
    """gtFine labelIds path of the leftImg8bit image ``name`` (relative to leftImg8bit/<split>)."""
    if not name.endswith(CITYSCAPES_IMAGE_SUFFIX):
        raise UserError(
            f"Cityscapes image name '{name}' does not end with '{CITYSCAPES_IMAGE_SUFFIX}'; "
            "file lists must name leftImg8bit images relative to leftImg8bit/<split>."
        )
    label_name = name[: -len(CITYSCAPES_IMAGE_SUFFIX)] + CITYSCAPES_LABEL_SUFFIX
    return Path(root) / CITYSCAPES_LABEL_DIR / split / label_name


class CityscapesDataset(SegmentationDataset):
    """Cityscapes images (and, with ``with_labels``, trainId labels) of one split.

    ``names`` None lists every image of the split. ``image_size`` is (width, height).
    A label whose size differs from its image's is an error (every Cityscapes pair has one size).
    """

    label_matches_image = True

    def __init__(
        self,
        root: Path,
        split: str,
        names: list[str] | None = None,
        image_size: tuple[int, int] | None = (1024, 512),
        normalization: str = "caffe_bgr",
        with_labels: bool = True,
        resize_label: bool = True,
    ) -> None:
        check_cityscapes_split(split)
        if names is None:
            names = list_cityscapes(root, split)
        super().__init__(root, names, image_size, normalization, resize_label)
        self.split = split
        self.has_labels = with_labels

    def image_path(self, index: int) -> Path:
        return self.root / CITYSCAPES_IMAGE_DIR / self.split / self.names[index]

    def label_path(self, index: int) -> Path:
        return label_path_for(self.root, self.split, self.names[index])

    def read_train_ids(self, index: int) -> np.ndarray:
        return read_cityscapes_train_ids(self.label_path(index))
