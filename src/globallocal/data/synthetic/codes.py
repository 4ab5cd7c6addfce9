"""The codes a layout canvas holds: trainIds, three void codes (-> Cityscapes void labelIds) and detail marks."""

from __future__ import annotations

import numpy as np
from cityscapesscripts.helpers.labels import labels as _CITYSCAPES_LABELS

from globallocal.data.labels import CLASS_NAMES, IGNORE_INDEX, train_id_to_label_id_lut

# --------------------------------------------------------------------------------------------
# Label canvas codes
# --------------------------------------------------------------------------------------------


def _train_id(name: str) -> int:
    return CLASS_NAMES.index(name)


def _label_id(name: str) -> int:
    return next(label.id for label in _CITYSCAPES_LABELS if label.name == name)


ROAD, SIDEWALK, BUILDING, WALL, FENCE = map(_train_id, ("road", "sidewalk", "building", "wall", "fence"))
POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN = map(_train_id, ("pole", "traffic light", "traffic sign"))
VEGETATION, TERRAIN, SKY = map(_train_id, ("vegetation", "terrain", "sky"))
PERSON, RIDER, CAR, TRUCK, BUS, TRAIN = map(_train_id, ("person", "rider", "car", "truck", "bus", "train"))
MOTORCYCLE, BICYCLE = map(_train_id, ("motorcycle", "bicycle"))

#: The canvas holds trainIds 0..18 plus three void codes that become Cityscapes void labelIds.
VOID_CODE = IGNORE_INDEX  # unlabelled props -> labelId 0 ("unlabeled")
EGO_CODE = 254  # ego-vehicle hood -> labelId 1
BORDER_CODE = 253  # rectification border -> labelId 2
UNLABELED_ID = _label_id("unlabeled")
EGO_VEHICLE_ID = _label_id("ego vehicle")
RECTIFICATION_BORDER_ID = _label_id("rectification border")


def canvas_to_label_id_lut() -> np.ndarray:
    """(256,) uint8 lookup table canvas code -> Cityscapes labelId."""
    lut = train_id_to_label_id_lut()
    lut[VOID_CODE] = UNLABELED_ID
    lut[EGO_CODE] = EGO_VEHICLE_ID
    lut[BORDER_CODE] = RECTIFICATION_BORDER_ID
    return lut


#: Detail codes: marks drawn inside an object that change its look, never its label.
DETAIL_NONE, DETAIL_BRIGHT, DETAIL_DARK, DETAIL_LAMP = 0, 1, 2, 3

# --------------------------------------------------------------------------------------------
# Domain styles: object statistics and appearance
# --------------------------------------------------------------------------------------------
