"""Label spaces: Cityscapes labelIds / trainIds (from cityscapesscripts) and the SYNTHIA mapping.

Everything here is derived from ``cityscapesscripts.helpers.labels``; no hand-written class table.
"""

from __future__ import annotations

import numpy as np
from cityscapesscripts.helpers.labels import labels as _CITYSCAPES_LABELS

IGNORE_INDEX = 255
NUM_CLASSES = 19
#: Largest labelId in the Cityscapes label definition (license plate, id -1, never appears in PNGs).
MAX_LABEL_ID = max(label.id for label in _CITYSCAPES_LABELS)

_TRAIN_LABELS = sorted(
    (label for label in _CITYSCAPES_LABELS if 0 <= label.trainId < IGNORE_INDEX),
    key=lambda label: label.trainId,
)
assert [label.trainId for label in _TRAIN_LABELS] == list(range(NUM_CLASSES))

#: Class names in trainId order, spelled as in cityscapesscripts ("road", ..., "bicycle").
CLASS_NAMES: tuple[str, ...] = tuple(label.name for label in _TRAIN_LABELS)
#: (19, 3) uint8 RGB colours in trainId order.
TRAIN_COLORS = np.array([label.color for label in _TRAIN_LABELS], dtype=np.uint8)
#: labelId of each trainId (the official evaluation reads labelIds).
TRAIN_TO_LABEL_ID: tuple[int, ...] = tuple(label.id for label in _TRAIN_LABELS)

#: SYNTHIA-RAND-CITYSCAPES class id -> Cityscapes trainId (docs/method.md, "Data formats"); others -> ignore.
SYNTHIA_TO_TRAIN_ID = {
    3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 16: 9,
    1: 10, 10: 11, 17: 12, 8: 13, 18: 14, 19: 15, 20: 16, 12: 17, 11: 18,
}
#: trainIds evaluated in the SYNTHIA protocols: 16 classes drop terrain, truck, train;
#: 13 classes also drop wall, fence, pole.
SYNTHIA_16_TRAIN_IDS: tuple[int, ...] = tuple(
    i for i, name in enumerate(CLASS_NAMES) if name not in ("terrain", "truck", "train")
)
SYNTHIA_13_TRAIN_IDS: tuple[int, ...] = tuple(
    i for i in SYNTHIA_16_TRAIN_IDS if CLASS_NAMES[i] not in ("wall", "fence", "pole")
)


def label_id_to_train_id_lut() -> np.ndarray:
    """(256,) uint8 lookup table labelId -> trainId; ignored and unknown ids map to 255."""
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for label in _CITYSCAPES_LABELS:
        if 0 <= label.id <= 255 and 0 <= label.trainId < IGNORE_INDEX:
            lut[label.id] = label.trainId
    return lut


def train_id_to_label_id_lut() -> np.ndarray:
    """(256,) uint8 lookup table trainId -> labelId; 255 (ignore) maps to 0 (unlabeled)."""
    lut = np.zeros(256, dtype=np.uint8)
    lut[:NUM_CLASSES] = TRAIN_TO_LABEL_ID
    return lut


def synthia_to_train_id_lut() -> np.ndarray:
    """(65536,) uint8 lookup table SYNTHIA class id (16-bit) -> trainId; others map to 255."""
    lut = np.full(65536, IGNORE_INDEX, dtype=np.uint8)
    for synthia_id, train_id in SYNTHIA_TO_TRAIN_ID.items():
        lut[synthia_id] = train_id
    return lut


def colorize(train_ids: np.ndarray) -> np.ndarray:
    """(H, W) trainIds -> (H, W, 3) uint8 RGB in the Cityscapes colours; ignore is black."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[:NUM_CLASSES] = TRAIN_COLORS
    return palette[train_ids]
