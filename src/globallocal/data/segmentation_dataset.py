"""What the GTA5, Cityscapes and SYNTHIA datasets share: one (image, label) pair per name.

Each item is a dict ``{"image": (3, H, W) float32, "label": (H, W) int64 trainIds, "name": str}``
with 255 = ignore; a dataset without labels leaves out "label".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from globallocal.data.images import read_rgb
from globallocal.data.transforms import (
    check_normalization,
    resize_image,
    resize_label,
    to_input_tensor,
)
from globallocal.errors import UserError


class SegmentationDataset(Dataset):
    """Reads, resizes and normalises items; subclasses say where files are and how to read labels.

    ``image_size`` is (width, height); None keeps each image's native size. With ``resize_label``
    the label is resized (nearest) to the image's final size, which also repairs image/label pairs
    whose native sizes differ; without it the label keeps its native resolution (for evaluation).
    """

    has_labels = True
    #: Whether a label must have its image's native size (Cityscapes); GTA5 has known mismatched pairs.
    label_matches_image = False

    def __init__(
        self,
        root: Path,
        names: list[str],
        image_size: tuple[int, int] | None,
        normalization: str,
        resize_label: bool,
    ) -> None:
        check_normalization(normalization)
        if not names:
            raise UserError(f"{root}: the list of images to load is empty; check the file list.")
        self.root = Path(root)
        self.names = list(names)
        self.image_size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
        self.normalization = normalization
        self.resize_label = resize_label

    def __len__(self) -> int:
        return len(self.names)

    def image_path(self, index: int) -> Path:
        raise NotImplementedError

    def label_path(self, index: int) -> Path:
        raise NotImplementedError

    def read_train_ids(self, index: int) -> np.ndarray:
        """(H, W) uint8 trainIds (255 = ignore) of item ``index`` at native resolution."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict:
        rgb = read_rgb(self.image_path(index))
        native_hw = rgb.shape[:2]
        if self.image_size is not None:
            rgb = resize_image(rgb, self.image_size)
        item = {
            "image": to_input_tensor(rgb, self.normalization),
            "name": self.names[index],
        }
        if self.has_labels:
            train_ids = self._checked_train_ids(index)
            if self.label_matches_image and train_ids.shape != native_hw:
                raise UserError(
                    f"{self.label_path(index)}: label is {train_ids.shape[1]}x{train_ids.shape[0]} but its image "
                    f"{self.image_path(index)} is {native_hw[1]}x{native_hw[0]}; use the label file of that image"
                )
            if self.resize_label:
                height, width = rgb.shape[:2]
                train_ids = resize_label(train_ids, (width, height))
            item["label"] = torch.from_numpy(train_ids.astype(np.int64))
        return item

    def _checked_train_ids(self, index: int) -> np.ndarray:
        label_path = self.label_path(index)
        if not label_path.is_file():
            raise UserError(
                f"{label_path}: label file not found for image {self.image_path(index)}; "
                "the dataset is incomplete: re-extract its labels or drop the image from the "
                "file list."
            )
        return self.read_train_ids(index)
