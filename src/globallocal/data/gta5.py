"""GTA5 (Richter et al., 2016): ``images/NNNNN.png`` with ``labels/NNNNN.png`` palette labelIds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from globallocal.data.cityscapes import read_cityscapes_train_ids
from globallocal.data.file_lists import GTA5_IMAGE_DIR, GTA5_LABEL_DIR, list_gta5
from globallocal.data.segmentation_dataset import SegmentationDataset


class GTA5Dataset(SegmentationDataset):
    """GTA5 images with trainId labels (255 = ignore).

    The label PNGs store Cityscapes labelIds as palette indices. A few images differ in size from
    their label; with ``resize_label`` both end at ``image_size`` so such pairs stay aligned.
    ``names`` None lists every image under ``<root>/images``. ``image_size`` is (width, height).
    """

    def __init__(
        self,
        root: Path,
        names: list[str] | None = None,
        image_size: tuple[int, int] | None = (1280, 720),
        normalization: str = "caffe_bgr",
        resize_label: bool = True,
    ) -> None:
        if names is None:
            names = list_gta5(root)
        super().__init__(root, names, image_size, normalization, resize_label)

    def image_path(self, index: int) -> Path:
        return self.root / GTA5_IMAGE_DIR / self.names[index]

    def label_path(self, index: int) -> Path:
        return self.root / GTA5_LABEL_DIR / self.names[index]

    def read_train_ids(self, index: int) -> np.ndarray:
        return read_cityscapes_train_ids(self.label_path(index))
