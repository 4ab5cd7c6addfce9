"""The shared layout model: a pinhole camera above a flat street, and the Painter that draws polygons
into the layout maps (metres projected to pixels)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from globallocal.data.synthetic.codes import DETAIL_NONE, SKY

Rng = np.random.Generator


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

MAX_OBJECT_DEPTH_M = 80.0
#: Objects may stand a little nearer than the ground at the bottom row: the frame cuts them off.
NEAREST_OBJECT_FACTOR = 0.9
Point = tuple[float, float]
Box = tuple[float, float, float, float]  # (x0, y0, x1, y1) in pixels


@dataclass(frozen=True)
class Camera:
    """Pinhole camera height_m above flat ground, looking along the street (+z)."""

    horizon_px: float
    vanish_x_px: float
    focal_px: float
    height_m: float = CAMERA_HEIGHT_M

    def project(self, x_m: float, depth_m: float, height_m: float = 0.0) -> Point:
        """Image (x, y) in pixels of the world point (x_m across, depth_m ahead, height_m up)."""
        scale = self.focal_px / depth_m
        return (self.vanish_x_px + x_m * scale, self.horizon_px + (self.height_m - height_m) * scale)

    def depth_at_row(self, row_px: float) -> float:
        """Depth in metres of the ground seen at image row row_px (below the horizon)."""
        return self.height_m * self.focal_px / (row_px - self.horizon_px)


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
    """A drawn layout: (H, W) uint8 maps of canvas codes, object ids, detail codes and shade, and the
    camera that saw it (what depth-dependent shifts need)."""

    canvas: np.ndarray
    instance: np.ndarray
    detail: np.ndarray
    shadow: np.ndarray
    horizon_px: float
    focal_px: float = 0.0
    camera_height_m: float = CAMERA_HEIGHT_M


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

    def scene(self, cam: Camera) -> Scene:
        canvas, instance, detail, shadow = (np.asarray(im, dtype=np.uint8) for im in self._images)
        return Scene(canvas, instance, detail, shadow, cam.horizon_px, cam.focal_px, cam.height_m)


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


def draw_camera(rng: Rng, width_px: int, height_px: int, height_m: float = CAMERA_HEIGHT_M,
                focal_factor: float = 1.0) -> Camera:
    """A camera with a random horizon row and a slightly off-centre vanishing point.

    height_m and focal_factor (times the usual focal length) change the viewpoint (the ``scale`` shift).
    """
    return Camera(
        horizon_px=_uniform(rng, HORIZON_ROW_RANGE) * height_px,
        vanish_x_px=(0.5 + _uniform(rng, VANISH_SHIFT_RANGE)) * width_px,
        focal_px=FOCAL_PER_WIDTH * width_px * focal_factor,
        height_m=height_m,
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


def _side(rng: Rng) -> int:
    return -1 if rng.random() < 0.5 else 1


def _bind(function: Callable, *args) -> Callable[[], None]:
    return lambda: function(*args)


def _child(rng: Rng) -> Rng:
    """An independent generator for one object, so drawing order cannot change what is drawn."""
    return np.random.default_rng(rng.integers(2**63))
