"""The embedded synthetic two-domain street-scene benchmark (DESIGN.md section 4, "The embedded default").

The real GTA5 -> Cityscapes data cannot be downloaded where this project is built, so ``prepare``
generates a seeded, deterministic stand-in and writes it in exactly the GTA5 layout (source) and the
Cityscapes layout (target), so that the real loaders read it. It is a demo and a test bed, not a
substitute for the real benchmark.

How an image is made
--------------------
1. **Layout (shared by both domains).** A pinhole camera 1.5 m above a flat ground plane looks down
   a street: sky, a horizon at a random row, a road in perspective with sidewalks, terrain verges,
   building facades (with walls, fences and parks between them) along both sides and across the far
   end, street trees, poles carrying traffic lights and signs, vehicles, pedestrians, riders on
   bicycles and motorcycles, parked two-wheelers. Everything is a PIL polygon drawn on a trainId
   canvas in painter's order (far to near), in metres projected to pixels, so object sizes shrink
   with depth exactly as in a real camera. Every random draw of this street geometry (horizon,
   road and sidewalk widths, facades, poles, trees, ego hood) comes from the same distributions in
   both domains: the *scene layout statistics are shared*.
2. **Object statistics (per domain).** How many cars, trucks, buses, trains, persons, riders and
   two-wheelers an image holds (Poisson means), and their size, are drawn from domain-specific
   distributions: the source, like a game, is car-heavy with larger vehicles and more motorbikes;
   the target, like a European city, has more pedestrians and bicycles. Only the source has
   unlabelled props (labelId 0), as GTA5 does; both have an ego-vehicle hood (labelId 1) and the
   target sometimes a rectification border (labelId 2).
3. **Appearance (per domain).** The label map is rendered to RGB with, per domain:
   a class palette (one canonical colour per class, hue-shifted per class by a random amount drawn
   independently for each domain, saturation and brightness scaled per domain: the source is
   saturated and bright like a game, the target muted), per-class textures (asphalt grain and lane
   markings, facade windows, leafy vegetation, fence bars, sidewalk joints, clouds) with
   domain-specific strength, per-object colour variation, lighting (brightness, contrast, a
   vertical gradient, white balance, vignetting), shadows (hard and dark in the sunny source, faint
   and soft in the overcast target), haze toward the horizon (light in the source, fog-like in the
   target), camera blur (target only) and sensor noise (strong in the target, almost none in the
   source).

Why: the per-class palette shift, the global photometric changes and the different object
statistics together make a real domain gap (a classifier of source colours is miscalibrated on
target colours), while shapes, positions, textures and context stay the same, so the classes remain
recognisable and an adaptation method has something to recover. The parameters below follow these
principles and were not tuned to favour any adaptation method. Only the size of the gap was checked,
against the real benchmark's (source-only about 37 vs oracle about 65 mIoU on GTA5 -> Cityscapes):
a small CNN trained from scratch at 128x64 for 400 steps scores 0.21-0.28 mIoU on target val when
trained on the source and 0.53-0.57 when trained on target train (benchmark seeds 0-2). A first,
stronger setting (hue shifts of +-0.06, saturation x1.35 vs x0.7, heavier haze) left the source-only
model at 0.09, too far below the oracle for output-space alignment to have structure to work with.

Determinism: every image has its own ``numpy`` Generator seeded from ``(seed, split, index)`` and each
domain's palette one seeded from ``(seed, domain)``, so the same seed gives byte-identical files
regardless of how many images are generated.
"""

from __future__ import annotations

import colorsys
import json
import math
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from cityscapesscripts.helpers.labels import labels as _CITYSCAPES_LABELS
from PIL import Image, ImageDraw

from globallocal import atomic
from globallocal.data.labels import (
    CLASS_NAMES,
    IGNORE_INDEX,
    NUM_CLASSES,
    label_id_to_train_id_lut,
    train_id_to_label_id_lut,
)
from globallocal.errors import UserError

Rng = np.random.Generator

# --------------------------------------------------------------------------------------------
# Public configuration
# --------------------------------------------------------------------------------------------

#: Smallest image side the street geometry still draws sensibly at.
MIN_WIDTH_PX = 64
MIN_HEIGHT_PX = 32


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and seed of the generated benchmark; sizes are (width, height) in pixels."""

    seed: int = 0
    num_source: int = 300
    num_target_train: int = 300
    num_target_val: int = 100
    source_size: tuple[int, int] = (384, 212)  # GTA5-like aspect (1914x1052)
    target_size: tuple[int, int] = (512, 256)  # Cityscapes 2:1

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or self.seed < 0:
            raise UserError(f"SyntheticConfig.seed must be an integer >= 0, got {self.seed!r}")
        for name in ("num_source", "num_target_train", "num_target_val"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UserError(f"SyntheticConfig.{name} must be an integer >= 1, got {value!r}")
        for name in ("source_size", "target_size"):
            size = getattr(self, name)
            if (
                len(size) != 2
                or not all(isinstance(side, int) for side in size)
                or size[0] < MIN_WIDTH_PX
                or size[1] < MIN_HEIGHT_PX
            ):
                raise UserError(
                    f"SyntheticConfig.{name} must be [width, height] in pixels with width >= "
                    f"{MIN_WIDTH_PX} and height >= {MIN_HEIGHT_PX}, got {size!r}"
                )


#: The three generated splits; the first is the source domain, the other two the target domain.
SOURCE = "source"
TARGET_TRAIN = "target_train"
TARGET_VAL = "target_val"
SPLITS = (SOURCE, TARGET_TRAIN, TARGET_VAL)
_SPLIT_STREAM = {SOURCE: 0, TARGET_TRAIN: 1, TARGET_VAL: 2}
_PALETTE_STREAM = 100  # keeps palette seeds apart from image seeds
_DOMAIN_STREAM = {"source": 0, "target": 1}

#: Made-up city names; train and val cities differ, as in Cityscapes.
TRAIN_CITIES = ("altbrunn", "bergheide", "kesselfurt")
VAL_CITIES = ("lindmoor", "ostergrau")
#: Cityscapes annotates frame 19 of each 30-frame snippet; we name our frames the same way.
ANNOTATED_FRAME = 19

#: The two dataset folders under the output root: GTA5 layout (source), Cityscapes layout (target).
SOURCE_DIR = "gta5"
TARGET_DIR = "cityscapes"
#: Written next to the two dataset folders; marks ``out_root`` as ours so a rerun may replace it.
MARKER_FILE = "synthetic_benchmark.json"

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


@dataclass(frozen=True)
class ObjectStatistics:
    """Per-image object counts (Poisson means, or a probability) and size scale of one domain."""

    cars: float
    trucks: float
    buses: float
    train_probability: float
    persons: float
    riders: float
    motorcycle_share_of_riders: float
    parked_motorcycles: float
    parked_bicycles: float
    void_props: float
    size_scale_range: tuple[float, float]


@dataclass(frozen=True)
class DomainStyle:
    """How one domain looks; ranges are (low, high) of a uniform draw per image."""

    name: str
    objects: ObjectStatistics
    hue_jitter: float  # largest per-class hue shift, as a fraction of the colour wheel
    saturation_gain: float
    value_gain: float
    texture_gain: float
    brightness_range: tuple[float, float]
    contrast_range: tuple[float, float]
    vertical_gradient_range: tuple[float, float]  # relative brightness change, top to bottom
    white_balance_jitter: float  # largest per-channel gain change
    vignette_range: tuple[float, float]  # darkening at the corners
    shadow_darkness_range: tuple[float, float]  # fraction of light removed in shade
    shadow_blur_frac: float  # shadow edge softness, Gaussian sigma / image height
    haze_range: tuple[float, float]  # haze weight at the horizon
    haze_rgb: tuple[float, float, float]
    blur_sigma_frac_range: tuple[float, float]  # Gaussian sigma / image height
    noise_std_range: tuple[float, float]  # on the [0, 1] intensity scale
    marking_rgb: tuple[float, float, float]
    lamp_rgb: tuple[float, float, float]
    hood_rgb: tuple[float, float, float]


SOURCE_STYLE = DomainStyle(
    name="source",
    objects=ObjectStatistics(
        cars=4.0, trucks=0.7, buses=0.4, train_probability=0.25, persons=2.5, riders=0.8,
        motorcycle_share_of_riders=0.6, parked_motorcycles=0.5, parked_bicycles=0.4,
        void_props=3.0, size_scale_range=(1.0, 1.15),
    ),
    hue_jitter=0.04,
    saturation_gain=1.2,
    value_gain=1.05,
    texture_gain=1.0,
    brightness_range=(0.95, 1.15),
    contrast_range=(1.0, 1.2),
    vertical_gradient_range=(-0.1, 0.1),
    white_balance_jitter=0.04,
    vignette_range=(0.0, 0.0),
    shadow_darkness_range=(0.4, 0.55),
    shadow_blur_frac=0.0,
    haze_range=(0.0, 0.12),
    haze_rgb=(0.85, 0.8, 0.7),
    blur_sigma_frac_range=(0.0, 0.0),
    noise_std_range=(0.0, 0.006),
    marking_rgb=(0.97, 0.97, 0.95),
    lamp_rgb=(1.0, 0.15, 0.1),
    hood_rgb=(0.45, 0.08, 0.08),
)

TARGET_STYLE = DomainStyle(
    name="target",
    objects=ObjectStatistics(
        cars=6.0, trucks=0.35, buses=0.3, train_probability=0.2, persons=5.0, riders=1.0,
        motorcycle_share_of_riders=0.25, parked_motorcycles=0.3, parked_bicycles=1.5,
        void_props=0.0, size_scale_range=(0.9, 1.05),
    ),
    hue_jitter=0.04,
    saturation_gain=0.8,
    value_gain=0.95,
    texture_gain=0.7,
    brightness_range=(0.8, 1.0),
    contrast_range=(0.85, 1.0),
    vertical_gradient_range=(-0.3, 0.0),
    white_balance_jitter=0.06,
    vignette_range=(0.1, 0.25),
    shadow_darkness_range=(0.05, 0.3),
    shadow_blur_frac=0.02,
    haze_range=(0.15, 0.35),
    haze_rgb=(0.72, 0.76, 0.8),
    blur_sigma_frac_range=(0.0025, 0.005),
    noise_std_range=(0.01, 0.03),
    marking_rgb=(0.82, 0.8, 0.72),
    lamp_rgb=(0.85, 0.3, 0.25),
    hood_rgb=(0.2, 0.2, 0.22),
)

_STYLE_OF_SPLIT = {SOURCE: SOURCE_STYLE, TARGET_TRAIN: TARGET_STYLE, TARGET_VAL: TARGET_STYLE}

# --------------------------------------------------------------------------------------------
# Shared layout model: camera and street geometry (metres)
# --------------------------------------------------------------------------------------------

CAMERA_HEIGHT_M = 1.5
#: Focal length in pixels per pixel of image width (Cityscapes: about 2262 px at 2048 px).
FOCAL_PER_WIDTH = 1.1
HORIZON_ROW_RANGE = (0.38, 0.48)  # fraction of image height
VANISH_SHIFT_RANGE = (-0.06, 0.06)  # fraction of image width
#: Ground polygons start this close to the camera, well below the bottom image row.
NEAREST_DEPTH_M = 1.0

ROAD_WIDTH_RANGE_M = (7.0, 14.0)
CAMERA_LANE_SHIFT_RANGE = (-0.3, 0.3)  # camera position across the road, fraction of its width
SIDEWALK_WIDTH_RANGE_M = (2.0, 4.5)
VERGE_PROBABILITY = 0.5  # a terrain strip between sidewalk and facades
VERGE_WIDTH_RANGE_M = (0.5, 3.0)
STREET_LENGTH_RANGE_M = (40.0, 150.0)
OPEN_STREET_PROBABILITY = 0.25  # no buildings across the far end: the road meets the horizon
OPEN_STREET_LENGTH_M = 400.0
BACK_ROW_HALF_WIDTH_M = 80.0
BACK_BUILDING_WIDTH_RANGE_M = (8.0, 25.0)

SEGMENT_LENGTH_RANGE_M = (6.0, 25.0)
BUILDING_HEIGHT_RANGE_M = (6.0, 22.0)
WALL_HEIGHT_RANGE_M = (1.0, 3.0)
FENCE_HEIGHT_RANGE_M = (1.0, 2.2)
SEGMENT_KINDS = ("building", "wall", "fence", "park")
SEGMENT_KIND_PROBABILITIES = (0.6, 0.1, 0.12, 0.18)
PARK_PROBABILITY = SEGMENT_KIND_PROBABILITIES[SEGMENT_KINDS.index("park")]
PARK_DEPTH_M = 25.0  # how far a park extends away from the street
TREES_PER_PARK = 2.0
TREE_BEHIND_FENCE_PROBABILITY = 0.5
CANOPY_RADIUS_RANGE_M = (1.8, 4.0)
CANOPY_CENTRE_HEIGHT_RANGE_M = (4.0, 8.0)
CANOPY_FLATNESS = 0.85  # canopy height / width
MIN_TRUNK_M = 1.0  # bare trunk below the canopy
TRUNK_WIDTH_M = 0.35
STREET_TREES_PER_SIDE = 1.2

POLES_PER_SIDE = 2.5
POLE_HEIGHT_RANGE_M = (3.5, 8.0)
POLE_WIDTH_M = 0.2
TRAFFIC_LIGHT_PROBABILITY = 0.35
MAST_ARM_PROBABILITY = 0.5
MAST_ARM_LENGTH_RANGE_M = (2.5, 5.0)
TRAFFIC_LIGHT_SIZE_M = (0.35, 1.0)  # (width, height)
SIGN_ON_POLE_PROBABILITY = 0.45
SIGN_POSTS = 1.0  # short posts that carry only a sign, per image
SIGN_POST_HEIGHT_M = 2.2
SIGN_SIZE_RANGE_M = (0.6, 1.0)
SIGN_HEIGHT_RANGE_M = (2.0, 3.2)

MAX_OBJECT_DEPTH_M = 80.0
#: Objects may stand a little nearer than the ground at the bottom row: the frame cuts them off.
NEAREST_OBJECT_FACTOR = 0.9
PARKED_VEHICLE_PROBABILITY = 0.4
PERSON_CROSSING_PROBABILITY = 0.2
RIDER_ON_SIDEWALK_PROBABILITY = 0.2
BIKE_LANE_WIDTH_M = 2.0
CAR_SIZE_M = (1.8, 4.4, 1.5)  # (width, length, height)
TRUCK_SIZE_M = (2.5, 7.5, 3.6)
BUS_SIZE_M = (2.55, 12.0, 3.2)
TRAIN_SIZE_M = (2.65, 25.0, 3.7)
PERSON_HEIGHT_RANGE_M = (1.55, 1.9)
BICYCLE_LENGTH_M = 1.75
BICYCLE_SEAT_M = 0.85
MOTORCYCLE_LENGTH_M = 2.1
MOTORCYCLE_SEAT_M = 0.95
PROP_SIZE_RANGE_M = (0.5, 2.0)

HOOD_HEIGHT_RANGE = (0.06, 0.12)  # fraction of image height
HOOD_CENTRE_SHIFT_RANGE = (-0.05, 0.05)  # fraction of image width
HOOD_HALF_WIDTH_RANGE = (0.6, 0.8)  # fraction of image width
BORDER_PROBABILITY = 0.5  # target only, as some Cityscapes frames have one
BORDER_WIDTH_RANGE = (0.002, 0.008)  # fraction of image width

Point = tuple[float, float]
Box = tuple[float, float, float, float]  # (x0, y0, x1, y1) in pixels


@dataclass(frozen=True)
class Camera:
    """Pinhole camera CAMERA_HEIGHT_M above flat ground, looking along the street (+z)."""

    horizon_px: float
    vanish_x_px: float
    focal_px: float

    def project(self, x_m: float, depth_m: float, height_m: float = 0.0) -> Point:
        """Image (x, y) in pixels of the world point (x_m across, depth_m ahead, height_m up)."""
        scale = self.focal_px / depth_m
        return (self.vanish_x_px + x_m * scale, self.horizon_px + (CAMERA_HEIGHT_M - height_m) * scale)

    def depth_at_row(self, row_px: float) -> float:
        """Depth in metres of the ground seen at image row row_px (below the horizon)."""
        return CAMERA_HEIGHT_M * self.focal_px / (row_px - self.horizon_px)


@dataclass(frozen=True)
class Street:
    """Across-street positions (metres, camera at 0, left negative) and the street's length."""

    road_left_m: float
    road_right_m: float
    sidewalk_width_m: float
    facade_left_m: float
    facade_right_m: float
    end_m: float
    is_open: bool


@dataclass
class Scene:
    """A drawn layout: (H, W) uint8 maps of canvas codes, object ids, detail codes and shade."""

    canvas: np.ndarray
    instance: np.ndarray
    detail: np.ndarray
    shadow: np.ndarray
    horizon_px: float


class Painter:
    """Draws one polygon at a time into the four layout maps, each later shape over the earlier."""

    def __init__(self, width_px: int, height_px: int) -> None:
        size = (width_px, height_px)
        self.width_px, self.height_px = size
        self._images = [Image.new("L", size, fill) for fill in (SKY, 0, DETAIL_NONE, 0)]
        self._canvas, self._instance, self._detail, self._shadow = (ImageDraw.Draw(im) for im in self._images)
        self._next_instance = 0

    def new_instance(self) -> int:
        """A fresh object id (1..255, wrapping); 0 is the initial sky."""
        self._next_instance = self._next_instance % 255 + 1
        return self._next_instance

    def polygon(self, points: list[Point], code: int, instance: int, shaded: bool = False) -> None:
        self._canvas.polygon(points, fill=code)
        self._instance.polygon(points, fill=instance)
        self._detail.polygon(points, fill=DETAIL_NONE)
        self._shadow.polygon(points, fill=int(shaded))

    def ellipse(self, box: Box, code: int, instance: int) -> None:
        box = _ordered_box(box)
        self._canvas.ellipse(box, fill=code)
        self._instance.ellipse(box, fill=instance)
        self._detail.ellipse(box, fill=DETAIL_NONE)
        self._shadow.ellipse(box, fill=0)

    def ring(self, box: Box, code: int, instance: int, width_px: int) -> None:
        box = _ordered_box(box)
        self._canvas.ellipse(box, outline=code, width=width_px)
        self._instance.ellipse(box, outline=instance, width=width_px)
        self._detail.ellipse(box, outline=DETAIL_NONE, width=width_px)
        self._shadow.ellipse(box, outline=0, width=width_px)

    def line(self, points: list[Point], code: int, instance: int, width_px: int) -> None:
        self._canvas.line(points, fill=code, width=width_px)
        self._instance.line(points, fill=instance, width=width_px)
        self._detail.line(points, fill=DETAIL_NONE, width=width_px)
        self._shadow.line(points, fill=0, width=width_px)

    def mark(self, points: list[Point], detail: int) -> None:
        """Change the look inside an already drawn shape (windows, wheels, lane markings)."""
        self._detail.polygon(points, fill=detail)

    def mark_ellipse(self, box: Box, detail: int) -> None:
        self._detail.ellipse(_ordered_box(box), fill=detail)

    def cast_shadow(self, points: list[Point]) -> None:
        self._shadow.polygon(points, fill=1)

    def scene(self, horizon_px: float) -> Scene:
        canvas, instance, detail, shadow = (np.asarray(im, dtype=np.uint8) for im in self._images)
        return Scene(canvas, instance, detail, shadow, horizon_px)


def _ordered_box(box: Box) -> Box:
    x0, y0, x1, y1 = box
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def _uniform(rng: Rng, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def _log_uniform(rng: Rng, low: float, high: float) -> float:
    """Depths drawn uniformly in log space: as many objects near as far, per octave of depth."""
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _pixel_width(cam: Camera, width_m: float, depth_m: float) -> int:
    """Line width in pixels of something width_m wide at depth_m, never thinner than one pixel."""
    return max(1, round(width_m * cam.focal_px / depth_m))


def _plane(cam: Camera, x_m: float, depth_m: float, offsets: list[tuple[float, float]]) -> list[Point]:
    """Points of a shape in the vertical plane facing the camera at depth_m; offsets (dx_m, height_m)."""
    return [cam.project(x_m + dx, depth_m, height) for dx, height in offsets]


def _plane_box(cam: Camera, x_m: float, depth_m: float, half_width_m: float, bottom_m: float,
               top_m: float) -> Box:
    """Image box (x0, y0, x1, y1) of an upright rectangle facing the camera."""
    left, top = cam.project(x_m - half_width_m, depth_m, top_m)
    right, bottom = cam.project(x_m + half_width_m, depth_m, bottom_m)
    return (left, top, right, bottom)


def _ground_quad(cam: Camera, x0_m: float, x1_m: float, near_m: float, far_m: float) -> list[Point]:
    corners = ((x0_m, near_m), (x1_m, near_m), (x1_m, far_m), (x0_m, far_m))
    return [cam.project(x_m, depth_m) for x_m, depth_m in corners]


def _side_quad(cam: Camera, x_m: float, near_m: float, far_m: float, bottom_m: float,
               top_m: float) -> list[Point]:
    """A vertical face along the street at across-position x_m."""
    return [
        cam.project(x_m, near_m, bottom_m),
        cam.project(x_m, far_m, bottom_m),
        cam.project(x_m, far_m, top_m),
        cam.project(x_m, near_m, top_m),
    ]


# ---- street -----------------------------------------------------------------------------------


def draw_camera(rng: Rng, width_px: int, height_px: int) -> Camera:
    """A camera with a random horizon row and a slightly off-centre vanishing point."""
    return Camera(
        horizon_px=_uniform(rng, HORIZON_ROW_RANGE) * height_px,
        vanish_x_px=(0.5 + _uniform(rng, VANISH_SHIFT_RANGE)) * width_px,
        focal_px=FOCAL_PER_WIDTH * width_px,
    )


def draw_street(rng: Rng) -> Street:
    """Road, sidewalks, verges and street length, in metres."""
    road_width = _uniform(rng, ROAD_WIDTH_RANGE_M)
    road_left = -road_width / 2 - _uniform(rng, CAMERA_LANE_SHIFT_RANGE) * road_width
    sidewalk = _uniform(rng, SIDEWALK_WIDTH_RANGE_M)
    verges = [_uniform(rng, VERGE_WIDTH_RANGE_M) if rng.random() < VERGE_PROBABILITY else 0.0
              for _ in range(2)]
    is_open = bool(rng.random() < OPEN_STREET_PROBABILITY)
    end = OPEN_STREET_LENGTH_M if is_open else _uniform(rng, STREET_LENGTH_RANGE_M)
    return Street(
        road_left_m=road_left,
        road_right_m=road_left + road_width,
        sidewalk_width_m=sidewalk,
        facade_left_m=road_left - sidewalk - verges[0],
        facade_right_m=road_left + road_width + sidewalk + verges[1],
        end_m=end,
        is_open=is_open,
    )


def _draw_ground(p: Painter, cam: Camera, street: Street, rng: Rng) -> None:
    """Terrain everywhere below the horizon, then sidewalks, road and lane markings."""
    below_horizon = (0, cam.horizon_px, p.width_px, p.height_px)
    p.polygon(_box_points(below_horizon), TERRAIN, 0)
    near, far = NEAREST_DEPTH_M, street.end_m
    walk = street.sidewalk_width_m
    left, right = street.road_left_m, street.road_right_m
    p.polygon(_ground_quad(cam, left - walk, left, near, far), SIDEWALK, p.new_instance())
    p.polygon(_ground_quad(cam, right, right + walk, near, far), SIDEWALK, p.new_instance())
    p.polygon(_ground_quad(cam, left, right, near, far), ROAD, p.new_instance())
    _draw_lane_markings(p, cam, street, rng)


LANE_WIDTH_M = 3.5
MARKING_WIDTH_M = 0.15
DASH_LENGTH_M = 3.0
DASH_PERIOD_M = 9.0
CROSSWALK_PROBABILITY = 0.3
CROSSWALK_DEPTH_RANGE_M = (8.0, 30.0)
CROSSWALK_STRIPE_M = 0.5
CROSSWALK_LENGTH_M = 3.0
EDGE_LINE_INSET_M = 0.3  # solid lines run this far inside the kerb


def _draw_lane_markings(p: Painter, cam: Camera, street: Street, rng: Rng) -> None:
    """Solid edge lines, dashed lane dividers and sometimes a zebra crossing (detail only)."""
    half = MARKING_WIDTH_M / 2
    for edge in (street.road_left_m + EDGE_LINE_INSET_M, street.road_right_m - EDGE_LINE_INSET_M):
        p.mark(_ground_quad(cam, edge - half, edge + half, NEAREST_DEPTH_M, street.end_m), DETAIL_BRIGHT)
    lanes = max(1, round((street.road_right_m - street.road_left_m) / LANE_WIDTH_M))
    lane_width = (street.road_right_m - street.road_left_m) / lanes
    phase = rng.uniform(0, DASH_PERIOD_M)
    last_m = min(street.end_m, MAX_OBJECT_DEPTH_M * 2)  # farther dashes are below a pixel anyway
    for lane in range(1, lanes):
        x = street.road_left_m + lane * lane_width
        for start in np.arange(NEAREST_DEPTH_M + phase, last_m, DASH_PERIOD_M):
            p.mark(_ground_quad(cam, x - half, x + half, start, start + DASH_LENGTH_M), DETAIL_BRIGHT)
    if rng.random() < CROSSWALK_PROBABILITY:
        near = min(_uniform(rng, CROSSWALK_DEPTH_RANGE_M), street.end_m - CROSSWALK_LENGTH_M)
        far = near + CROSSWALK_LENGTH_M
        stripes = np.arange(street.road_left_m + CROSSWALK_STRIPE_M, street.road_right_m - CROSSWALK_STRIPE_M,
                            2 * CROSSWALK_STRIPE_M)
        for x in stripes:
            p.mark(_ground_quad(cam, x, x + CROSSWALK_STRIPE_M, near, far), DETAIL_BRIGHT)


def _draw_tree(p: Painter, cam: Camera, x_m: float, depth_m: float, rng: Rng) -> None:
    """A trunk and a round canopy, both vegetation (as Cityscapes labels trees)."""
    radius = _uniform(rng, CANOPY_RADIUS_RANGE_M)
    centre = max(_uniform(rng, CANOPY_CENTRE_HEIGHT_RANGE_M), radius * CANOPY_FLATNESS + MIN_TRUNK_M)
    instance = p.new_instance()
    trunk = _plane_box(cam, x_m, depth_m, TRUNK_WIDTH_M / 2, 0.0, centre)
    p.polygon(_box_points(trunk, min_width_px=1), VEGETATION, instance)
    half_height = radius * CANOPY_FLATNESS
    canopy = _plane_box(cam, x_m, depth_m, radius, centre - half_height, centre + half_height)
    p.ellipse(canopy, VEGETATION, instance)


def _box_points(box: Box, min_width_px: float = 0.0) -> list[Point]:
    """Corners of an image box, widened about its centre to at least min_width_px."""
    x0, y0, x1, y1 = _ordered_box(box)
    if x1 - x0 < min_width_px:
        centre = (x0 + x1) / 2
        x0, x1 = centre - min_width_px / 2, centre + min_width_px / 2
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _draw_back_row(p: Painter, cam: Camera, street: Street, rng: Rng) -> None:
    """Buildings (sometimes trees) standing across the far end of a closed street."""
    x = -BACK_ROW_HALF_WIDTH_M
    while x < BACK_ROW_HALF_WIDTH_M:
        width = _uniform(rng, BACK_BUILDING_WIDTH_RANGE_M)
        if rng.random() < PARK_PROBABILITY:
            _draw_tree(p, cam, x + width / 2, street.end_m, rng)
        else:
            height = _uniform(rng, BUILDING_HEIGHT_RANGE_M)
            box = _plane_box(cam, x + width / 2, street.end_m, width / 2, 0.0, height)
            p.polygon(_box_points(box), BUILDING, p.new_instance())
        x += width


def _draw_facades(p: Painter, cam: Camera, street: Street, shaded_side: int, rng: Rng) -> None:
    """Both sides of the street, far to near: buildings, walls, fences and parks along the facade line."""
    for side, facade_x in ((-1, street.facade_left_m), (1, street.facade_right_m)):
        shaded = side == shaded_side
        far = street.end_m
        while far > NEAREST_DEPTH_M:
            near = max(NEAREST_DEPTH_M, far - _uniform(rng, SEGMENT_LENGTH_RANGE_M))
            kind = SEGMENT_KINDS[rng.choice(len(SEGMENT_KINDS), p=SEGMENT_KIND_PROBABILITIES)]
            _draw_segment(p, cam, kind, side, facade_x, near, far, shaded, rng)
            far = near


def _draw_segment(p: Painter, cam: Camera, kind: str, side: int, facade_x: float, near: float, far: float,
                  shaded: bool, rng: Rng) -> None:
    """One stretch of the facade line between depths near and far; parks show trees behind it."""
    if kind == "building":
        height = _uniform(rng, BUILDING_HEIGHT_RANGE_M)
        p.polygon(_side_quad(cam, facade_x, near, far, 0.0, height), BUILDING, p.new_instance(), shaded)
        return
    if kind == "park" or (kind == "fence" and rng.random() < TREE_BEHIND_FENCE_PROBABILITY):
        for _ in range(max(1, rng.poisson(TREES_PER_PARK))):
            x, depth = facade_x + side * rng.uniform(1.0, PARK_DEPTH_M), rng.uniform(near, far)
            _draw_tree(p, cam, x, depth, rng)
    if kind == "wall":
        height = _uniform(rng, WALL_HEIGHT_RANGE_M)
        p.polygon(_side_quad(cam, facade_x, near, far, 0.0, height), WALL, p.new_instance(), shaded)
    elif kind == "fence":
        height = _uniform(rng, FENCE_HEIGHT_RANGE_M)
        p.polygon(_side_quad(cam, facade_x, near, far, 0.0, height), FENCE, p.new_instance(), shaded)


SHADOW_SIDE_PROBABILITY = 0.7
SHADOW_WIDTH_RANGE_M = (2.0, 8.0)


def _draw_cast_shadow(p: Painter, cam: Camera, street: Street, side: int, rng: Rng) -> None:
    """The shade the buildings on one side throw across the ground."""
    width = _uniform(rng, SHADOW_WIDTH_RANGE_M)
    facade = street.facade_left_m if side < 0 else street.facade_right_m
    edge = facade - side * width
    p.cast_shadow(_ground_quad(cam, min(facade, edge), max(facade, edge), NEAREST_DEPTH_M, street.end_m))


# ---- things -----------------------------------------------------------------------------------


SIGN_BELOW_POLE_TOP_M = 0.5
LIGHT_BELOW_POLE_TOP_M = 0.2
MAST_ARM_WIDTH_M = 0.14
LAMP_POSITIONS = (0.2, 0.5, 0.8)  # lamp centres, fraction of the traffic light's height from its top
LAMP_RADIUS = 0.3  # fraction of the traffic light's width
SIGN_INNER_SCALE = 0.6  # the light inner field of a sign, relative to the sign


def _draw_pole(p: Painter, cam: Camera, x_m: float, depth_m: float, side: int, rng: Rng) -> None:
    """A pole that may carry a traffic sign and a traffic light (on top or on a mast arm over the road)."""
    height = _uniform(rng, POLE_HEIGHT_RANGE_M)
    instance = p.new_instance()
    box = _plane_box(cam, x_m, depth_m, POLE_WIDTH_M / 2, 0.0, height)
    p.polygon(_box_points(box, min_width_px=1), POLE, instance)
    if rng.random() < SIGN_ON_POLE_PROBABILITY:
        sign_centre = min(height - SIGN_BELOW_POLE_TOP_M, _uniform(rng, SIGN_HEIGHT_RANGE_M))
        _draw_sign(p, cam, x_m, depth_m, sign_centre, rng)
    if rng.random() < TRAFFIC_LIGHT_PROBABILITY:
        light_x, light_top = x_m, height - LIGHT_BELOW_POLE_TOP_M
        if rng.random() < MAST_ARM_PROBABILITY:
            light_x = x_m - side * _uniform(rng, MAST_ARM_LENGTH_RANGE_M)  # reaching over the road
            arm = [cam.project(x_m, depth_m, light_top), cam.project(light_x, depth_m, light_top)]
            p.line(arm, POLE, instance, _pixel_width(cam, MAST_ARM_WIDTH_M, depth_m))
        _draw_traffic_light(p, cam, light_x, depth_m, light_top)


def _draw_traffic_light(p: Painter, cam: Camera, x_m: float, depth_m: float, top_m: float) -> None:
    """A box hanging from top_m with three lamps."""
    width, height = TRAFFIC_LIGHT_SIZE_M
    box = _plane_box(cam, x_m, depth_m, width / 2, top_m - height, top_m)
    p.polygon(_box_points(box, min_width_px=1), TRAFFIC_LIGHT, p.new_instance())
    radius = width * LAMP_RADIUS
    for position in LAMP_POSITIONS:
        centre = top_m - height * position
        p.mark_ellipse(_plane_box(cam, x_m, depth_m, radius, centre - radius, centre + radius), DETAIL_LAMP)


SIGN_SHAPES = ("circle", "triangle", "rectangle")


def _draw_sign(p: Painter, cam: Camera, x_m: float, depth_m: float, centre_m: float, rng: Rng) -> None:
    """A round or triangular sign with a light inner field, or a plain rectangular one."""
    half = _uniform(rng, SIGN_SIZE_RANGE_M) / 2
    shape = SIGN_SHAPES[rng.integers(len(SIGN_SHAPES))]
    instance = p.new_instance()
    box = _plane_box(cam, x_m, depth_m, half, centre_m - half, centre_m + half)
    if shape == "circle":
        p.ellipse(box, TRAFFIC_SIGN, instance)
        inner = half * SIGN_INNER_SCALE
        field = _plane_box(cam, x_m, depth_m, inner, centre_m - inner, centre_m + inner)
        p.mark_ellipse(field, DETAIL_BRIGHT)
    elif shape == "triangle":
        for size, draw in ((half, None), (half * SIGN_INNER_SCALE, DETAIL_BRIGHT)):
            corners = _plane(cam, x_m, depth_m, [(-size, centre_m + size), (size, centre_m + size),
                                                 (0.0, centre_m - size)])
            if draw is None:
                p.polygon(corners, TRAFFIC_SIGN, instance)
            else:
                p.mark(corners, draw)
    else:
        p.polygon(_box_points(box, min_width_px=1), TRAFFIC_SIGN, instance)


def _draw_sign_post(p: Painter, cam: Camera, x_m: float, depth_m: float, rng: Rng) -> None:
    """A thin post carrying one sign."""
    box = _plane_box(cam, x_m, depth_m, POLE_WIDTH_M / 3, 0.0, SIGN_POST_HEIGHT_M)
    p.polygon(_box_points(box, min_width_px=1), POLE, p.new_instance())
    _draw_sign(p, cam, x_m, depth_m, SIGN_POST_HEIGHT_M, rng)


def _draw_box(p: Painter, cam: Camera, x_m: float, depth_m: float, size_m: tuple[float, float],
              bottom_m: float, top_m: float, code: int, instance: int) -> None:
    """An upright box (width, length) whose rear face is at depth_m: the visible side, top and rear."""
    width, length = size_m
    left, right, far = x_m - width / 2, x_m + width / 2, depth_m + length
    side_x = _visible_side_x(x_m, width)
    if side_x is not None:
        p.polygon(_side_quad(cam, side_x, depth_m, far, bottom_m, top_m), code, instance)
    if top_m < CAMERA_HEIGHT_M:  # the camera looks down on it
        top = [cam.project(left, depth_m, top_m), cam.project(right, depth_m, top_m),
               cam.project(right, far, top_m), cam.project(left, far, top_m)]
        p.polygon(top, code, instance)
    rear = _plane_box(cam, x_m, depth_m, width / 2, bottom_m, top_m)
    p.polygon(_box_points(rear, min_width_px=1), code, instance)


def _visible_side_x(x_m: float, width_m: float) -> float | None:
    """Across-position of the box side facing the camera, or None when the camera is right behind it."""
    if x_m - width_m / 2 > 0:
        return x_m - width_m / 2
    if x_m + width_m / 2 < 0:
        return x_m + width_m / 2
    return None


SIDE_BAND_MARGIN_M = 0.5  # window bands stop this short of a box's ends


def _mark_side_band(p: Painter, cam: Camera, x_m: float, depth_m: float, size_m: tuple[float, float],
                    bottom_m: float, top_m: float, detail: int) -> None:
    """A band (side windows) along the visible side of a box, between heights bottom_m and top_m."""
    side_x = _visible_side_x(x_m, size_m[0])
    if side_x is not None:
        margin = min(SIDE_BAND_MARGIN_M, size_m[1] * 0.1)
        near, far = depth_m + margin, depth_m + size_m[1] - margin
        p.mark(_side_quad(cam, side_x, near, far, bottom_m, top_m), detail)


TYRE_WIDTH_M = 0.15
TYRE_INSET_M = 0.2  # from the vehicle's side to its tyre
AXLE_POSITIONS = (0.2, 0.8)  # fraction of the vehicle's length from its rear


def _mark_wheels(p: Painter, cam: Camera, x_m: float, depth_m: float, size_m: tuple[float, float],
                 radius_m: float) -> None:
    """Dark tyres at the rear corners and, when the side shows, along the side."""
    width, length = size_m
    for dx in (-width / 2 + TYRE_INSET_M, width / 2 - TYRE_INSET_M - TYRE_WIDTH_M):
        tyre = _plane_box(cam, x_m + dx + TYRE_WIDTH_M / 2, depth_m, TYRE_WIDTH_M / 2, 0.0, radius_m)
        p.mark(_box_points(tyre), DETAIL_DARK)
    side_x = _visible_side_x(x_m, width)
    if side_x is not None:
        for position in AXLE_POSITIONS:
            axle = depth_m + length * position
            p.mark(_side_quad(cam, side_x, axle - radius_m, axle + radius_m, 0.0, 2 * radius_m), DETAIL_DARK)


CONTACT_SHADOW_MARGIN_M = 0.2


def _cast_contact_shadow(p: Painter, cam: Camera, x_m: float, depth_m: float, width_m: float,
                         length_m: float) -> None:
    """The dark patch of ground under a vehicle, a little larger than its footprint."""
    margin = CONTACT_SHADOW_MARGIN_M
    half = width_m / 2 + margin
    p.cast_shadow(_ground_quad(cam, x_m - half, x_m + half, depth_m - margin, depth_m + length_m))


#: Car proportions: body from CAR_CLEARANCE_M up to CAR_BODY_TOP of its height; a narrower,
#: shorter cabin (CAR_CABIN_SIZE of width and length) set CAR_CABIN_SETBACK of its length from the rear.
CAR_CLEARANCE_M = 0.15
CAR_BODY_TOP = 0.55
CAR_CABIN_SIZE = (0.85, 0.5)
CAR_CABIN_SETBACK = 0.25
CAR_WHEEL_RADIUS_M = 0.33
WINDOW_FRAME_M = 0.08
TAIL_LIGHT_SIZE_M = (0.25, 0.15)  # (width, height)
TAIL_LIGHT_INSET_M = 0.1
TAIL_LIGHT_DROP_M = 0.2  # from the top of the body to the bottom of the lights


def _draw_car(p: Painter, cam: Camera, x_m: float, depth_m: float, scale: float) -> None:
    """A car seen from behind (and from the side when off-centre): body, cabin, windows, tyres, lights."""
    width, length, height = (side * scale for side in CAR_SIZE_M)
    instance = p.new_instance()
    body_top = height * CAR_BODY_TOP
    _cast_contact_shadow(p, cam, x_m, depth_m, width, length)
    _draw_box(p, cam, x_m, depth_m, (width, length), CAR_CLEARANCE_M * scale, body_top, CAR, instance)
    cabin = (width * CAR_CABIN_SIZE[0], length * CAR_CABIN_SIZE[1])
    cabin_depth = depth_m + length * CAR_CABIN_SETBACK
    _draw_box(p, cam, x_m, cabin_depth, cabin, body_top, height, CAR, instance)
    glass_bottom, glass_top = body_top + WINDOW_FRAME_M, height - WINDOW_FRAME_M
    rear_window = _plane_box(cam, x_m, cabin_depth, cabin[0] / 2 - WINDOW_FRAME_M, glass_bottom, glass_top)
    p.mark(_box_points(rear_window), DETAIL_DARK)
    _mark_side_band(p, cam, x_m, cabin_depth, cabin, glass_bottom, glass_top, DETAIL_DARK)
    _mark_wheels(p, cam, x_m, depth_m, (width, length), CAR_WHEEL_RADIUS_M * scale)
    light_width, light_height = TAIL_LIGHT_SIZE_M
    for side in (-1, 1):
        centre = x_m + side * (width / 2 - TAIL_LIGHT_INSET_M - light_width / 2)
        bottom = body_top - TAIL_LIGHT_DROP_M
        light = _plane_box(cam, centre, depth_m, light_width / 2, bottom, bottom + light_height)
        p.mark(_box_points(light), DETAIL_LAMP)


LARGE_VEHICLE_CLEARANCE_M = 0.3
LARGE_VEHICLE_WHEEL_RADIUS_M = 0.5
WINDOW_BAND = (0.5, 0.88)  # bus and tram windows, fraction of the height
TRUCK_CAB_LENGTH_M = 2.0
TRUCK_CAB_HEIGHT = 0.75  # fraction of the cargo box height
TRUCK_CAB_WINDOW = (0.45, 0.7)
TRUCK_CAB_GAP_M = 0.3


def _draw_large_vehicle(p: Painter, cam: Camera, code: int, x_m: float, depth_m: float, scale: float) -> None:
    """Truck, bus or train (tram): a tall box with a window band, and a cab for trucks."""
    size = {TRUCK: TRUCK_SIZE_M, BUS: BUS_SIZE_M, TRAIN: TRAIN_SIZE_M}[code]
    width, length, height = (side * scale for side in size)
    instance = p.new_instance()
    _cast_contact_shadow(p, cam, x_m, depth_m, width, length)
    clearance = LARGE_VEHICLE_CLEARANCE_M
    if code == TRUCK:
        cab_length = TRUCK_CAB_LENGTH_M * scale
        cab = (width * 0.95, cab_length)
        cab_depth = depth_m + length - cab_length
        _draw_box(p, cam, x_m, cab_depth, cab, clearance, height * TRUCK_CAB_HEIGHT, TRUCK, instance)
        low, high = TRUCK_CAB_WINDOW
        _mark_side_band(p, cam, x_m, cab_depth, cab, height * low, height * high, DETAIL_DARK)
        cargo = (width, length - cab_length - TRUCK_CAB_GAP_M)
        _draw_box(p, cam, x_m, depth_m, cargo, clearance, height, TRUCK, instance)
    else:
        low, high = WINDOW_BAND
        _draw_box(p, cam, x_m, depth_m, (width, length), clearance, height, code, instance)
        _mark_side_band(p, cam, x_m, depth_m, (width, length), height * low, height * high, DETAIL_DARK)
        window = _plane_box(cam, x_m, depth_m, width * 0.4, height * low, height * high)
        p.mark(_box_points(window), DETAIL_DARK)
    _mark_wheels(p, cam, x_m, depth_m, (width, length), LARGE_VEHICLE_WHEEL_RADIUS_M * scale)


def _mirror(offsets: list[tuple[float, float]], facing: int) -> list[tuple[float, float]]:
    return [(dx * facing, height) for dx, height in offsets]


#: Body parts as (across, up) offsets in units of body height, facing right; feet at 0.
STANDING_TORSO = ((-0.15, 0.5), (0.15, 0.5), (0.16, 0.83), (-0.16, 0.83))
STANDING_HIP_JOINTS = ((0.01, 0.53), (0.12, 0.53))  # top of the right leg
STANDING_FEET = ((0.1, 0.0), (0.02, 0.0))  # bottom of the right leg, before the stride
STANDING_HEAD_CENTRE = (0.0, 0.92)
MAX_STRIDE = 0.12  # how far each foot may step out, in body heights
#: A seated rider's parts, with the hips at (0, 0) instead of the feet.
SEATED_TORSO = ((-0.1, 0.0), (0.08, 0.0), (0.2, 0.33), (0.04, 0.35))
SEATED_HEAD_CENTRE = (0.14, 0.42)
SEATED_LEG_ACROSS = ((-0.05, 0.05), (0.1, 0.03))  # (back, front) edge of the thigh, then of the shin
PEDAL_HEIGHT_M = 0.2
HEAD_RADIUS = 0.07


def _body_part(shape, height_m: float, hip_m: float = 0.0, facing: int = 1) -> list[tuple[float, float]]:
    """Offsets in metres of a body-part shape for a body height_m tall whose hips are raised hip_m."""
    return [(dx * height_m * facing, up * height_m + hip_m) for dx, up in shape]


def _draw_head(p: Painter, cam: Camera, x_m: float, depth_m: float, centre_m: tuple[float, float],
               height_m: float, code: int, instance: int) -> None:
    across, up = centre_m
    radius = HEAD_RADIUS * height_m
    p.ellipse(_plane_box(cam, x_m + across, depth_m, radius * 0.85, up - radius, up + radius), code, instance)


def _draw_person(p: Painter, cam: Camera, x_m: float, depth_m: float, height_m: float, rng: Rng) -> None:
    """A standing or walking person: two legs a random stride apart, a torso and a head."""
    instance = p.new_instance()
    stride = rng.uniform(0.0, MAX_STRIDE)
    right_leg = STANDING_HIP_JOINTS + tuple((dx + stride, up) for dx, up in STANDING_FEET)
    for facing in (-1, 1):
        p.polygon(_plane(cam, x_m, depth_m, _body_part(right_leg, height_m, facing=facing)), PERSON, instance)
    p.polygon(_plane(cam, x_m, depth_m, _body_part(STANDING_TORSO, height_m)), PERSON, instance)
    (head,) = _body_part((STANDING_HEAD_CENTRE,), height_m)
    _draw_head(p, cam, x_m, depth_m, head, height_m, PERSON, instance)


def _draw_seated_rider(p: Painter, cam: Camera, x_m: float, depth_m: float, height_m: float, hip_m: float,
                       facing: int) -> None:
    """A rider sitting hip_m above the ground, leaning forward, one leg down to the pedal."""
    instance = p.new_instance()
    (thigh_back, thigh_front), (shin_front, shin_back) = SEATED_LEG_ACROSS
    leg = [(thigh_back * height_m, hip_m), (thigh_front * height_m, hip_m),
           (shin_front * height_m, PEDAL_HEIGHT_M), (shin_back * height_m, PEDAL_HEIGHT_M)]
    p.polygon(_plane(cam, x_m, depth_m, _mirror(leg, facing)), RIDER, instance)
    p.polygon(_plane(cam, x_m, depth_m, _body_part(SEATED_TORSO, height_m, hip_m, facing)), RIDER, instance)
    (head,) = _body_part((SEATED_HEAD_CENTRE,), height_m, hip_m, facing)
    _draw_head(p, cam, x_m, depth_m, head, height_m, RIDER, instance)


BICYCLE_WHEEL_RADIUS_M = 0.34
BICYCLE_TUBE_M = 0.05
BICYCLE_HUB_M = 0.52  # axle distance from the bicycle's centre
#: The frame as one polyline of (across, up) points in metres, facing right.
_REAR_AXLE, _FRONT_AXLE = (-BICYCLE_HUB_M, BICYCLE_WHEEL_RADIUS_M), (BICYCLE_HUB_M, BICYCLE_WHEEL_RADIUS_M)
_SEAT, _PEDALS, _HEAD_TUBE, _HANDLEBAR = (-0.12, 0.85), (0.0, 0.3), (0.4, 0.85), (0.45, 1.0)
BICYCLE_FRAME = (_REAR_AXLE, _SEAT, _PEDALS, _REAR_AXLE, _PEDALS, _HEAD_TUBE, _SEAT, _HEAD_TUBE, _FRONT_AXLE,
                 _HEAD_TUBE, _HANDLEBAR)
MOTORCYCLE_WHEEL_RADIUS_M = 0.32
MOTORCYCLE_HUB_M = 0.7
#: The body outline in metres, facing right: from under the seat to the front fork, tank and seat.
MOTORCYCLE_BODY = ((-0.8, 0.45), (0.7, 0.4), (0.75, 0.75), (0.35, 1.05), (-0.3, 0.95), (-0.85, 0.8))
RIDER_SEAT_OFFSET_M = 0.1  # the rider sits a little behind the two-wheeler's centre


def _draw_bicycle(p: Painter, cam: Camera, x_m: float, depth_m: float, facing: int) -> None:
    """Side view: two wheels and a diamond frame."""
    instance = p.new_instance()
    radius = BICYCLE_WHEEL_RADIUS_M
    tube = _pixel_width(cam, BICYCLE_TUBE_M, depth_m)
    for hub in (-BICYCLE_HUB_M, BICYCLE_HUB_M):
        p.ring(_plane_box(cam, x_m + hub, depth_m, radius, 0.0, 2 * radius), BICYCLE, instance, tube)
    p.line(_plane(cam, x_m, depth_m, _mirror(BICYCLE_FRAME, facing)), BICYCLE, instance, tube)


def _draw_motorcycle(p: Painter, cam: Camera, x_m: float, depth_m: float, facing: int) -> None:
    """Side view: a body over two dark wheels."""
    instance = p.new_instance()
    radius = MOTORCYCLE_WHEEL_RADIUS_M
    for hub in (-MOTORCYCLE_HUB_M, MOTORCYCLE_HUB_M):
        wheel = _plane_box(cam, x_m + hub, depth_m, radius, 0.0, 2 * radius)
        p.ellipse(wheel, MOTORCYCLE, instance)
        p.mark_ellipse(wheel, DETAIL_DARK)
    p.polygon(_plane(cam, x_m, depth_m, _mirror(MOTORCYCLE_BODY, facing)), MOTORCYCLE, instance)


def _draw_rider(p: Painter, cam: Camera, x_m: float, depth_m: float, on_motorcycle: bool, scale: float,
                rng: Rng) -> None:
    """A bicycle or motorcycle seen from the side, with its rider."""
    facing = _side(rng)
    if on_motorcycle:
        _draw_motorcycle(p, cam, x_m, depth_m, facing)
    else:
        _draw_bicycle(p, cam, x_m, depth_m, facing)
    hip = MOTORCYCLE_SEAT_M if on_motorcycle else BICYCLE_SEAT_M
    height = _uniform(rng, PERSON_HEIGHT_RANGE_M) * scale
    _draw_seated_rider(p, cam, x_m - RIDER_SEAT_OFFSET_M * facing, depth_m, height, hip, facing)


PROP_CORNERS_RANGE = (5, 9)  # [low, high)
PROP_MIN_RADIUS = 0.6  # fraction of the full radius: how round a prop is at least


def _draw_prop(p: Painter, cam: Camera, x_m: float, depth_m: float, rng: Rng) -> None:
    """An unlabelled object (bin, box, bench...): a random star-shaped blob standing on the ground."""
    size = _uniform(rng, PROP_SIZE_RANGE_M)
    corners = int(rng.integers(*PROP_CORNERS_RANGE))
    angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
    radii = rng.uniform(PROP_MIN_RADIUS, 1.0, corners) * size / 2
    offsets = [(float(r * np.cos(a)), float(size / 2 + r * np.sin(a))) for a, r in zip(angles, radii)]
    p.polygon(_plane(cam, x_m, depth_m, offsets), VOID_CODE, p.new_instance())


#: Where things stand across a sidewalk: (from, to) as fractions of its width from the kerb.
POLE_BAND = (0.05, 0.2)
STREET_TREE_BAND = (0.7, 0.9)
SIGN_POST_BAND = (0.05, 0.3)
PEDESTRIAN_BAND = (0.0, 1.0)
RIDER_SIDEWALK_BAND = (0.2, 0.6)
PARKED_TWO_WHEELER_BAND = (0.5, 0.9)
PROP_BAND = (0.3, 1.0)
LANE_MARGIN_M = 0.3  # between a moving vehicle and the kerb
KERB_GAP_M = 0.2  # between a parked vehicle and the kerb
#: Large vehicles start farther away than other objects, so that they rarely fill the whole frame.
LARGE_VEHICLE_NEAR_FACTOR = 1.5
LARGE_VEHICLE_SIZES_M = {TRUCK: TRUCK_SIZE_M, BUS: BUS_SIZE_M, TRAIN: TRAIN_SIZE_M}


def _sidewalk_x(rng: Rng, street: Street, side: int, band: tuple[float, float]) -> float:
    """An across-position on the left (side -1) or right (+1) sidewalk, within band."""
    offset = rng.uniform(*band) * street.sidewalk_width_m
    return street.road_left_m - offset if side < 0 else street.road_right_m + offset


def _lane_x(rng: Rng, street: Street, width_m: float) -> float:
    """An across-position on the road for something width_m wide that keeps clear of the kerbs."""
    margin = width_m / 2 + LANE_MARGIN_M
    return float(rng.uniform(street.road_left_m + margin, street.road_right_m - margin))


def _side(rng: Rng) -> int:
    return -1 if rng.random() < 0.5 else 1


DrawCall = tuple[float, Callable[[], None]]


def _street_furniture(p: Painter, cam: Camera, street: Street, near_m: float, far_m: float,
                      rng: Rng) -> list[DrawCall]:
    """Poles, sign posts and street trees (shared statistics), as (depth, draw) calls."""
    calls: list[DrawCall] = []
    for side in (-1, 1):
        for _ in range(rng.poisson(POLES_PER_SIDE)):
            x, depth = _sidewalk_x(rng, street, side, POLE_BAND), _log_uniform(rng, near_m, far_m)
            calls.append((depth, _bind(_draw_pole, p, cam, x, depth, side, _child(rng))))
        for _ in range(rng.poisson(STREET_TREES_PER_SIDE)):
            x, depth = _sidewalk_x(rng, street, side, STREET_TREE_BAND), _log_uniform(rng, near_m, far_m)
            calls.append((depth, _bind(_draw_tree, p, cam, x, depth, _child(rng))))
    for _ in range(rng.poisson(SIGN_POSTS)):
        x, depth = _sidewalk_x(rng, street, _side(rng), SIGN_POST_BAND), _log_uniform(rng, near_m, far_m)
        calls.append((depth, _bind(_draw_sign_post, p, cam, x, depth, _child(rng))))
    return calls


def _objects(p: Painter, cam: Camera, street: Street, stats: ObjectStatistics, near_m: float, far_m: float,
             rng: Rng) -> list[DrawCall]:
    """Vehicles, people, two-wheelers and props, with this domain's counts and sizes."""
    calls: list[DrawCall] = []
    scale = _uniform(rng, stats.size_scale_range)

    def kerb_x(side: int, inset_m: float) -> float:
        return street.road_left_m + inset_m if side < 0 else street.road_right_m - inset_m

    for _ in range(rng.poisson(stats.cars)):
        width = CAR_SIZE_M[0] * scale
        parked = rng.random() < PARKED_VEHICLE_PROBABILITY
        x = kerb_x(_side(rng), width / 2 + KERB_GAP_M) if parked else _lane_x(rng, street, width)
        depth = _log_uniform(rng, near_m, far_m)
        calls.append((depth, _bind(_draw_car, p, cam, x, depth, scale)))
    large = [(TRUCK, rng.poisson(stats.trucks)), (BUS, rng.poisson(stats.buses)),
             (TRAIN, int(rng.random() < stats.train_probability))]
    for code, count in large:
        for _ in range(count):
            x = _lane_x(rng, street, LARGE_VEHICLE_SIZES_M[code][0] * scale)
            depth = _log_uniform(rng, near_m * LARGE_VEHICLE_NEAR_FACTOR, far_m)
            calls.append((depth, _bind(_draw_large_vehicle, p, cam, code, x, depth, scale)))
    for _ in range(rng.poisson(stats.persons)):
        crossing = rng.random() < PERSON_CROSSING_PROBABILITY
        x = _lane_x(rng, street, 0.0) if crossing else _sidewalk_x(rng, street, _side(rng), PEDESTRIAN_BAND)
        depth, height = _log_uniform(rng, near_m, far_m), _uniform(rng, PERSON_HEIGHT_RANGE_M) * scale
        calls.append((depth, _bind(_draw_person, p, cam, x, depth, height, _child(rng))))
    for _ in range(rng.poisson(stats.riders)):
        side = _side(rng)
        if rng.random() < RIDER_ON_SIDEWALK_PROBABILITY:
            x = _sidewalk_x(rng, street, side, RIDER_SIDEWALK_BAND)
        else:
            x = kerb_x(side, rng.uniform(LANE_MARGIN_M, BIKE_LANE_WIDTH_M))
        on_motorcycle = bool(rng.random() < stats.motorcycle_share_of_riders)
        depth = _log_uniform(rng, near_m, far_m)
        calls.append((depth, _bind(_draw_rider, p, cam, x, depth, on_motorcycle, scale, _child(rng))))
    for count, draw in ((stats.parked_bicycles, _draw_bicycle), (stats.parked_motorcycles, _draw_motorcycle)):
        for _ in range(rng.poisson(count)):
            x = _sidewalk_x(rng, street, _side(rng), PARKED_TWO_WHEELER_BAND)
            depth = _log_uniform(rng, near_m, far_m)
            calls.append((depth, _bind(draw, p, cam, x, depth, _side(rng))))
    for _ in range(rng.poisson(stats.void_props)):
        x, depth = _sidewalk_x(rng, street, _side(rng), PROP_BAND), _log_uniform(rng, near_m, far_m)
        calls.append((depth, _bind(_draw_prop, p, cam, x, depth, _child(rng))))
    return calls


def _bind(function: Callable, *args) -> Callable[[], None]:
    return lambda: function(*args)


def _child(rng: Rng) -> Rng:
    """An independent generator for one object, so drawing order cannot change what is drawn."""
    return np.random.default_rng(rng.integers(2**63))


def _draw_hood(p: Painter, rng: Rng) -> None:
    """The ego vehicle's bonnet: a flat ellipse cap rising from the bottom edge."""
    hood_px = _uniform(rng, HOOD_HEIGHT_RANGE) * p.height_px
    centre_x = p.width_px * (0.5 + _uniform(rng, HOOD_CENTRE_SHIFT_RANGE))
    half_width = p.width_px * _uniform(rng, HOOD_HALF_WIDTH_RANGE)
    # The ellipse's lower two thirds lie below the image: only a flat cap hood_px high shows.
    hood = (centre_x - half_width, p.height_px - hood_px, centre_x + half_width, p.height_px + hood_px * 2)
    p.ellipse(hood, EGO_CODE, 0)


def _draw_border(p: Painter, rng: Rng) -> None:
    """A rectification border: a thin band along the left, right or bottom edge."""
    band = max(1.0, _uniform(rng, BORDER_WIDTH_RANGE) * p.width_px)
    w, h = p.width_px, p.height_px
    edge = int(rng.integers(3))
    box = [(0, 0, band - 1, h - 1), (w - band, 0, w - 1, h - 1), (0, h - band, w - 1, h - 1)][edge]
    p.polygon(_box_points(box), BORDER_CODE, 0)


def draw_scene(rng: Rng, width_px: int, height_px: int, stats: ObjectStatistics,
               with_border: bool) -> Scene:
    """Draw one street layout (shared statistics) with one domain's object statistics.

    Returns a Scene whose maps are (height_px, width_px).
    """
    p = Painter(width_px, height_px)
    cam = draw_camera(rng, width_px, height_px)
    street = draw_street(rng)
    shaded_side = _side(rng) if rng.random() < SHADOW_SIDE_PROBABILITY else 0
    _draw_ground(p, cam, street, rng)
    if shaded_side:
        _draw_cast_shadow(p, cam, street, shaded_side, rng)
    if not street.is_open:
        _draw_back_row(p, cam, street, rng)
    _draw_facades(p, cam, street, shaded_side, rng)
    near = NEAREST_OBJECT_FACTOR * cam.depth_at_row(height_px)
    far = min(street.end_m, MAX_OBJECT_DEPTH_M)
    calls = _street_furniture(p, cam, street, near, far, rng)
    calls += _objects(p, cam, street, stats, near, far, rng)
    for _, draw in sorted(calls, key=lambda call: -call[0]):  # painter's order: far to near
        draw()
    _draw_hood(p, rng)
    if with_border and rng.random() < BORDER_PROBABILITY:
        _draw_border(p, rng)
    return p.scene(cam.horizon_px)


# --------------------------------------------------------------------------------------------
# Appearance (per domain)
# --------------------------------------------------------------------------------------------

#: Canonical RGB (0..1) of each class before a domain's palette shift.
CANONICAL_RGB = {
    "road": (0.36, 0.36, 0.38), "sidewalk": (0.6, 0.56, 0.53), "building": (0.5, 0.42, 0.37),
    "wall": (0.64, 0.6, 0.48), "fence": (0.45, 0.38, 0.28), "pole": (0.33, 0.33, 0.35),
    "traffic light": (0.15, 0.17, 0.15), "traffic sign": (0.8, 0.68, 0.16), "vegetation": (0.24, 0.44, 0.2),
    "terrain": (0.52, 0.56, 0.32), "sky": (0.56, 0.72, 0.9), "person": (0.44, 0.28, 0.32),
    "rider": (0.6, 0.24, 0.24), "car": (0.28, 0.32, 0.48), "truck": (0.6, 0.48, 0.36),
    "bus": (0.72, 0.6, 0.24), "train": (0.4, 0.52, 0.52), "motorcycle": (0.36, 0.24, 0.44),
    "bicycle": (0.24, 0.4, 0.56),
}
VOID_PROP_RGB = (0.5, 0.46, 0.42)
BORDER_RGB = (0.02, 0.02, 0.02)
PALETTE_SV_JITTER = 0.15  # per-class saturation/value change, fraction

#: Spread of per-object colour variation by class (cars come in every colour, roads do not).
INSTANCE_TINT_STD = {
    "road": 0.02, "sidewalk": 0.04, "building": 0.08, "wall": 0.06, "fence": 0.05, "pole": 0.03,
    "traffic light": 0.02, "traffic sign": 0.05, "vegetation": 0.04, "terrain": 0.04, "sky": 0.0,
    "person": 0.1, "rider": 0.08, "car": 0.16, "truck": 0.1, "bus": 0.06, "train": 0.05,
    "motorcycle": 0.1, "bicycle": 0.1,
}
VOID_PROP_TINT_STD = 0.2
TINT_LUMINANCE_SHARE = 0.7

TEXTURE_FIELDS = ("low", "mid", "grain", "leafy", "windows", "bars", "stripes", "ramp")
#: Texture amplitude per class and field: the relative brightness change a field causes.
TEXTURE_AMPLITUDE = {
    "road": {"grain": 0.12, "low": 0.08},
    "sidewalk": {"stripes": 0.12, "grain": 0.08, "low": 0.05},
    "building": {"windows": 0.35, "low": 0.1, "grain": 0.04},
    "wall": {"low": 0.15, "mid": 0.08, "grain": 0.1},
    "fence": {"bars": 0.35, "grain": 0.05},
    "pole": {"grain": 0.04},
    "traffic light": {"grain": 0.05},
    "traffic sign": {"grain": 0.03},
    "vegetation": {"leafy": 0.35, "mid": 0.15},
    "terrain": {"mid": 0.2, "grain": 0.12, "low": 0.1},
    "sky": {"low": 0.12, "ramp": 0.35},
    "person": {"mid": 0.06},
    "rider": {"mid": 0.06},
    "car": {"low": 0.08, "ramp": 0.1},
    "truck": {"stripes": 0.1, "grain": 0.03},
    "bus": {"stripes": 0.08, "grain": 0.03},
    "train": {"stripes": 0.1, "grain": 0.03},
    "motorcycle": {"grain": 0.05},
    "bicycle": {"grain": 0.05},
}
VOID_PROP_TEXTURE = {"mid": 0.3}
LOW_NOISE_CELLS = 4  # grid cells across the image height for the large-scale variation
MID_NOISE_CELL_FRAC = 1 / 40
LEAFY_CELL_FRAC = 1 / 70
LEAFY_THRESHOLD = 0.3
GRAIN_STD = 0.5
LEAF_LEVELS = (1.0, -0.6)  # (lit, shaded) leaves
WINDOW_PERIOD_FRAC = (1 / 18, 1 / 13)  # (x, y) window spacing as a fraction of image height
WINDOW_PERIOD_JITTER = (0.8, 1.25)  # per image, so facades differ between images
WINDOW_DUTY = 0.55  # window share of each period, along x and along y
WINDOW_LEVELS = (0.3, -1.0)  # (wall, glass)
BAR_PERIOD_FRAC = 1 / 60
BAR_DUTY = 0.3
STRIPE_PERIOD_FRAC = 1 / 28
STRIPE_DUTY = 0.15  # the dark joint between paving slabs or panels
STRIPE_LEVELS = (0.3, -1.0)  # (surface, joint)
MIN_CELL_PX = 2.0

HAZE_FALLOFF_FRAC = 0.15  # haze halves about every 0.1 image heights away from the horizon
DARK_DETAIL_GAIN = 0.25
BRIGHT_DETAIL_WEIGHT = 0.75


@dataclass(frozen=True)
class Palette:
    """One domain's tables indexed by canvas code.

    rgb (256, 3) base colour, tint_std (256,) per-object colour spread, texture (256, F) field weights.
    """

    rgb: np.ndarray
    tint_std: np.ndarray
    texture: np.ndarray


def _class_table(per_class: dict, void_value, default) -> np.ndarray:
    table = np.array([default] * 256, dtype=np.float32)
    for train_id, name in enumerate(CLASS_NAMES):
        table[train_id] = per_class[name]
    table[VOID_CODE] = void_value
    return table


def _texture_row(amplitudes: dict[str, float]) -> list[float]:
    return [amplitudes.get(name, 0.0) for name in TEXTURE_FIELDS]


def make_palette(seed: int, style: DomainStyle) -> Palette:
    """The domain's class colours: canonical colours hue-shifted per class, saturation/value scaled."""
    rng = np.random.default_rng([seed, _PALETTE_STREAM, _DOMAIN_STREAM[style.name]])
    rgb = _class_table(CANONICAL_RGB, VOID_PROP_RGB, (0.0, 0.0, 0.0))
    for code in [*range(NUM_CLASSES), VOID_CODE]:
        hue, saturation, value = colorsys.rgb_to_hsv(*rgb[code])
        hue = (hue + rng.uniform(-style.hue_jitter, style.hue_jitter)) % 1.0
        saturation *= style.saturation_gain * rng.uniform(1 - PALETTE_SV_JITTER, 1 + PALETTE_SV_JITTER)
        value *= style.value_gain * rng.uniform(1 - PALETTE_SV_JITTER, 1 + PALETTE_SV_JITTER)
        rgb[code] = colorsys.hsv_to_rgb(hue, min(saturation, 1.0), min(value, 1.0))
    rgb[EGO_CODE] = style.hood_rgb
    rgb[BORDER_CODE] = BORDER_RGB
    tint_std = _class_table(INSTANCE_TINT_STD, VOID_PROP_TINT_STD, 0.0)
    texture = _class_table({n: _texture_row(a) for n, a in TEXTURE_AMPLITUDE.items()},
                           _texture_row(VOID_PROP_TEXTURE), [0.0] * len(TEXTURE_FIELDS))
    return Palette(rgb=rgb, tint_std=tint_std, texture=texture * style.texture_gain)


def _smooth_noise(rng: Rng, width_px: int, height_px: int, cell_px: float) -> np.ndarray:
    """(H, W) float32 noise of unit-ish amplitude varying over about cell_px pixels."""
    cell_px = max(cell_px, MIN_CELL_PX)
    grid = rng.standard_normal((math.ceil(height_px / cell_px) + 1, math.ceil(width_px / cell_px) + 1))
    return cv2.resize(grid.astype(np.float32), (width_px, height_px), interpolation=cv2.INTER_CUBIC)


def _periodic(coords_px: np.ndarray, period_px: float, duty: float) -> np.ndarray:
    """1 inside the first `duty` fraction of each period, 0 elsewhere."""
    period_px = max(period_px, MIN_CELL_PX)
    return (np.mod(coords_px, period_px) < duty * period_px).astype(np.float32)


def texture_fields(rng: Rng, width_px: int, height_px: int) -> list[np.ndarray]:
    """Texture fields in TEXTURE_FIELDS order, float32, each roughly in [-1, 1].

    Each is (H, W), or (1, W) / (H, 1) for patterns that vary along one axis only.
    """
    h, w = height_px, width_px
    rows = np.arange(h, dtype=np.float32)[:, None]
    cols = np.arange(w, dtype=np.float32)[None, :]
    low = _smooth_noise(rng, w, h, h / LOW_NOISE_CELLS)
    mid = _smooth_noise(rng, w, h, h * MID_NOISE_CELL_FRAC)
    grain = rng.standard_normal((h, w), dtype=np.float32) * GRAIN_STD
    leaves = _smooth_noise(rng, w, h, h * LEAFY_CELL_FRAC) > LEAFY_THRESHOLD
    leafy = np.where(leaves, *LEAF_LEVELS).astype(np.float32)
    period_x, period_y = (frac * h * _uniform(rng, WINDOW_PERIOD_JITTER) for frac in WINDOW_PERIOD_FRAC)
    glass = _periodic(cols, period_x, WINDOW_DUTY) * _periodic(rows, period_y, WINDOW_DUTY)
    windows = _two_levels(glass, WINDOW_LEVELS)
    bars = _two_levels(_periodic(cols, h * BAR_PERIOD_FRAC, BAR_DUTY), (1.0, -1.0))
    stripes = _two_levels(_periodic(rows, h * STRIPE_PERIOD_FRAC, STRIPE_DUTY), STRIPE_LEVELS)
    ramp = rows / h
    return [low, mid, grain, leafy, windows, bars, stripes, ramp]


def _two_levels(mask: np.ndarray, levels: tuple[float, float]) -> np.ndarray:
    """levels[0] where mask is 0, levels[1] where it is 1."""
    off, on = levels
    return off + (on - off) * mask


def _texture(codes: np.ndarray, palette: Palette, fields: list[np.ndarray]) -> np.ndarray:
    """(H, W) relative brightness change: each pixel's class mixes the fields with its own weights."""
    texture = np.zeros(codes.shape, dtype=np.float32)
    for index, field in enumerate(fields):
        texture += palette.texture[:, index][codes] * field
    return texture


def _apply_details(rgb: np.ndarray, detail: np.ndarray, style: DomainStyle) -> np.ndarray:
    """Darken windows and tyres, paint markings and lamps: rgb * gain[detail] + offset[detail]."""
    gain = np.ones(DETAIL_LAMP + 1, dtype=np.float32)
    offset = np.zeros((DETAIL_LAMP + 1, 3), dtype=np.float32)
    gain[DETAIL_DARK] = DARK_DETAIL_GAIN
    gain[DETAIL_BRIGHT] = 1 - BRIGHT_DETAIL_WEIGHT
    offset[DETAIL_BRIGHT] = BRIGHT_DETAIL_WEIGHT * np.asarray(style.marking_rgb)
    gain[DETAIL_LAMP] = 0.0
    offset[DETAIL_LAMP] = style.lamp_rgb
    return rgb * gain[detail][..., None] + offset[detail]


def _apply_shadows(rgb: np.ndarray, shadow: np.ndarray, style: DomainStyle, rng: Rng) -> np.ndarray:
    """Darken the shaded pixels; soften the shadow edges where the domain's light is diffuse."""
    shade = shadow.astype(np.float32) * _uniform(rng, style.shadow_darkness_range)
    sigma = style.shadow_blur_frac * shadow.shape[0]
    if sigma > 0:
        shade = cv2.GaussianBlur(shade, (0, 0), sigma)
    return rgb * (1.0 - shade)[..., None]


def _apply_haze(rgb: np.ndarray, horizon_px: float, style: DomainStyle, rng: Rng) -> np.ndarray:
    """Blend toward the haze colour, most at the horizon (the farthest visible scene)."""
    h = rgb.shape[0]
    distance = np.abs(np.arange(h, dtype=np.float32) - horizon_px) / (HAZE_FALLOFF_FRAC * h)
    weight = (_uniform(rng, style.haze_range) * np.exp(-distance))[:, None, None]
    return (1 - weight) * rgb + weight * np.asarray(style.haze_rgb, dtype=np.float32)


def _apply_lighting(rgb: np.ndarray, style: DomainStyle, rng: Rng) -> np.ndarray:
    """Contrast, brightness, white balance, a vertical gradient and vignetting."""
    h, w, _ = rgb.shape
    contrast = _uniform(rng, style.contrast_range)
    rgb = rgb.mean() + contrast * (rgb - rgb.mean())
    gain = _uniform(rng, style.brightness_range) * (1 + rng.uniform(-1, 1, 3) * style.white_balance_jitter)
    gradient = 1 + _uniform(rng, style.vertical_gradient_range) * (np.arange(h, dtype=np.float32) / h - 0.5)
    rows = (np.arange(h, dtype=np.float32) / h - 0.5)[:, None]
    cols = (np.arange(w, dtype=np.float32) / w - 0.5)[None, :]
    vignette = 1 - _uniform(rng, style.vignette_range) * 2 * (rows**2 + cols**2)  # 2 r^2 is 1 at the corners
    return rgb * (gradient[:, None] * vignette)[..., None] * gain.astype(np.float32)


def _apply_blur_and_noise(rgb: np.ndarray, style: DomainStyle, rng: Rng) -> np.ndarray:
    """Camera blur, then Gaussian sensor noise per pixel and channel."""
    sigma = _uniform(rng, style.blur_sigma_frac_range) * rgb.shape[0]
    if sigma > 0:
        rgb = cv2.GaussianBlur(rgb, (0, 0), sigma)
    noise = rng.standard_normal(rgb.shape, dtype=np.float32) * _uniform(rng, style.noise_std_range)
    return rgb + noise


def render(scene: Scene, style: DomainStyle, palette: Palette, rng: Rng) -> np.ndarray:
    """Paint a Scene in one domain's look: (H, W, 3) uint8 RGB."""
    h, w = scene.canvas.shape
    codes = scene.canvas
    texture = _texture(codes, palette, texture_fields(rng, w, h))
    instance_tint = rng.standard_normal((256, 3), dtype=np.float32)
    # Mostly lighter or darker (one value for all channels), a little change of hue.
    instance_tint = TINT_LUMINANCE_SHARE * instance_tint[:, :1] + (1 - TINT_LUMINANCE_SHARE) * instance_tint
    tint = palette.tint_std[codes][..., None] * instance_tint[scene.instance]
    rgb = palette.rgb[codes] * (1 + texture)[..., None] + tint
    rgb = _apply_details(rgb, scene.detail, style)
    rgb = _apply_shadows(rgb, scene.shadow, style, rng)
    rgb = _apply_haze(rgb, scene.horizon_px, style, rng)
    rgb = _apply_lighting(rgb, style, rng)
    rgb = _apply_blur_and_noise(rgb, style, rng)
    return (np.clip(rgb, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Generation and writing
# --------------------------------------------------------------------------------------------


def generate_example(config: SyntheticConfig, split: str, index: int,
                     palette: Palette | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One image of a split, in memory: (H, W, 3) uint8 RGB and (H, W) uint8 Cityscapes labelIds.

    The same (config.seed, split, index) always gives the same arrays.
    """
    style = _STYLE_OF_SPLIT[split]
    width, height = config.source_size if split == SOURCE else config.target_size
    rng = np.random.default_rng([config.seed, _SPLIT_STREAM[split], index])
    scene = draw_scene(rng, width, height, style.objects, with_border=split != SOURCE)
    rgb = render(scene, style, palette or make_palette(config.seed, style), rng)
    return rgb, canvas_to_label_id_lut()[scene.canvas]


def cityscapes_palette() -> list[int]:
    """768 ints: the Cityscapes colour of each labelId, as GTA5's palette label PNGs carry."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for label in _CITYSCAPES_LABELS:
        if 0 <= label.id < 256:
            palette[label.id] = label.color
    return palette.ravel().tolist()


def gta5_name(index: int) -> str:
    """GTA5 file name of the index-th (0-based) image: 5 digits, 1-based."""
    return f"{index + 1:05d}.png"


def cityscapes_stem(split: str, index: int) -> tuple[str, str]:
    """(city, '<city>_<seq:06d>_<frame:06d>') of the index-th image of a target split."""
    cities = TRAIN_CITIES if split == TARGET_TRAIN else VAL_CITIES
    city = cities[index % len(cities)]
    return city, f"{city}_{index // len(cities):06d}_{ANNOTATED_FRAME:06d}"


#: zlib level for the RGB PNGs: noisy images barely compress, and level 1 writes them fastest.
RGB_PNG_COMPRESS_LEVEL = 1


def _save_rgb(path: Path, rgb: np.ndarray) -> None:
    Image.fromarray(rgb).save(path, compress_level=RGB_PNG_COMPRESS_LEVEL)


def _save_palette_label(path: Path, label_ids: np.ndarray, palette: list[int]) -> None:
    image = Image.frombytes("P", (label_ids.shape[1], label_ids.shape[0]), label_ids.tobytes())
    image.putpalette(palette)
    image.save(path)


def _save_gray_label(path: Path, label_ids: np.ndarray) -> None:
    Image.frombytes("L", (label_ids.shape[1], label_ids.shape[0]), label_ids.tobytes()).save(path)


def _clear_previous(out_root: Path) -> None:
    """Remove a benchmark we generated before; refuse to touch folders we did not write."""
    _check_ours(out_root)
    for folder in (out_root / SOURCE_DIR, out_root / TARGET_DIR):
        shutil.rmtree(folder, ignore_errors=True)


def _check_ours(out_root: Path) -> None:
    """Raise UserError if out_root holds dataset folders without the generator's marker."""
    previous = [out_root / SOURCE_DIR, out_root / TARGET_DIR]
    if not any(folder.exists() for folder in previous):
        return
    if not (out_root / MARKER_FILE).is_file():
        raise UserError(
            f"{out_root} already holds a {SOURCE_DIR}/ or {TARGET_DIR}/ folder that the synthetic "
            f"generator did not write (no {MARKER_FILE}); point the output at an empty folder or move "
            "those folders away"
        )


#: Images are made in two threads: numpy, OpenCV and PNG encoding release the GIL, so both cores work.
GENERATOR_THREADS = 2


def generate_benchmark(out_root: Path, config: SyntheticConfig) -> dict:
    """Write the benchmark under out_root in the GTA5 and Cityscapes layouts; return a summary.

    Writes ``out_root/gta5/{images,labels}/NNNNN.png``,
    ``out_root/cityscapes/{leftImg8bit,gtFine}/{train,val}/<city>/...`` and ``out_root/MARKER_FILE``
    (config and summary). The summary holds the image counts and, per domain, each class's share of
    the labelled pixels and the number of images it appears in.
    """
    out_root = Path(out_root)
    _clear_previous(out_root)
    label_palette = cityscapes_palette()
    palettes = {style.name: make_palette(config.seed, style) for style in (SOURCE_STYLE, TARGET_STYLE)}
    counts = {SOURCE: config.num_source, TARGET_TRAIN: config.num_target_train,
              TARGET_VAL: config.num_target_val}
    jobs = [(split, index) for split in SPLITS for index in range(counts[split])]

    def make_and_write(job: tuple[str, int]) -> np.ndarray:
        split, index = job
        palette = palettes[_STYLE_OF_SPLIT[split].name]
        rgb, label_ids = generate_example(config, split, index, palette)
        _write_example(out_root, split, index, rgb, label_ids, label_palette)
        return _train_id_histogram(label_ids)

    pixel_counts = {name: np.zeros(NUM_CLASSES, np.int64) for name in palettes}
    image_counts = {name: np.zeros(NUM_CLASSES, np.int64) for name in palettes}
    with ThreadPoolExecutor(max_workers=GENERATOR_THREADS) as pool:
        for (split, _), histogram in zip(jobs, pool.map(make_and_write, jobs)):
            domain = _STYLE_OF_SPLIT[split].name
            pixel_counts[domain] += histogram
            image_counts[domain] += histogram > 0
    summary = {
        "num_source": config.num_source,
        "num_target_train": config.num_target_train,
        "num_target_val": config.num_target_val,
        "class_frequencies": {domain: _fractions(totals) for domain, totals in pixel_counts.items()},
        "class_image_counts": {domain: dict(zip(CLASS_NAMES, map(int, per_class)))
                               for domain, per_class in image_counts.items()},
    }
    marker = {"config": asdict(config), "summary": summary}
    atomic.write_json(out_root / MARKER_FILE, marker)
    return summary


#: What a folder may hold for write_benchmark to replace it whole: what generate_benchmark writes, or
#: the note prepare leaves when it does not generate.
_REPLACEABLE = {SOURCE_DIR, TARGET_DIR, MARKER_FILE, "NOT_GENERATED.txt"}


def write_benchmark(out_root: Path, config: SyntheticConfig) -> dict:
    """generate_benchmark, whole or absent: built in a folder beside ``out_root``, then swapped in.

    A kill at any moment leaves the previous complete benchmark or none. Refuses to replace a folder
    holding anything the generator does not write (or a dataset folder without its marker).
    """
    out_root = Path(out_root)
    if out_root.is_dir():
        foreign = sorted(entry.name for entry in out_root.iterdir() if entry.name not in _REPLACEABLE)
        if foreign:
            raise UserError(
                f"{out_root} holds {', '.join(foreign[:3])}, which the synthetic generator did not write; "
                "point prepare.out_dir at an empty folder or move those files away"
            )
        _check_ours(out_root)
    with atomic.atomic_dir(out_root) as staging:
        return generate_benchmark(staging, config)


def _train_id_histogram(label_ids: np.ndarray) -> np.ndarray:
    """(19,) pixel count per trainId of an (H, W) labelId map, mapped as the real loaders map it."""
    train_ids = label_id_to_train_id_lut()[label_ids]
    return np.bincount(train_ids.ravel(), minlength=256)[:NUM_CLASSES]


def _fractions(pixel_totals: np.ndarray) -> dict[str, float]:
    total = max(int(pixel_totals.sum()), 1)
    return {name: round(int(count) / total, 6) for name, count in zip(CLASS_NAMES, pixel_totals)}


def _write_example(out_root: Path, split: str, index: int, rgb: np.ndarray, label_ids: np.ndarray,
                   label_palette: list[int]) -> None:
    if split == SOURCE:
        image_path = out_root / SOURCE_DIR / "images" / gta5_name(index)
        label_path = out_root / SOURCE_DIR / "labels" / gta5_name(index)
    else:
        subset = "train" if split == TARGET_TRAIN else "val"
        city, stem = cityscapes_stem(split, index)
        image_path = out_root / TARGET_DIR / "leftImg8bit" / subset / city / f"{stem}_leftImg8bit.png"
        label_path = out_root / TARGET_DIR / "gtFine" / subset / city / f"{stem}_gtFine_labelIds.png"
    image_path.parent.mkdir(parents=True, exist_ok=True)
    label_path.parent.mkdir(parents=True, exist_ok=True)
    _save_rgb(image_path, rgb)
    if split == SOURCE:
        _save_palette_label(label_path, label_ids, label_palette)
    else:
        _save_gray_label(label_path, label_ids)
