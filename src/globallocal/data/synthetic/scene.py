"""One scene layout: where furniture and objects stand, drawn far to near, plus the ego hood and border."""

from __future__ import annotations

from typing import Callable

from globallocal.data.synthetic.codes import BORDER_CODE, BUS, EGO_CODE, TRAIN, TRUCK
from globallocal.data.synthetic.styles import ObjectStatistics
from globallocal.data.synthetic.geometry import (
    CAMERA_HEIGHT_M,
    Camera,
    MAX_OBJECT_DEPTH_M,
    NEAREST_OBJECT_FACTOR,
    Painter,
    Rng,
    Scene,
    Street,
    _bind,
    _child,
    _log_uniform,
    _side,
    _uniform,
    draw_camera,
    draw_street,
)
from globallocal.data.synthetic.street import (
    POLES_PER_SIDE,
    SHADOW_SIDE_PROBABILITY,
    SIGN_POSTS,
    STREET_TREES_PER_SIDE,
    _box_points,
    _draw_back_row,
    _draw_cast_shadow,
    _draw_facades,
    _draw_ground,
    _draw_pole,
    _draw_sign_post,
    _draw_tree,
)
from globallocal.data.synthetic.objects import (
    BIKE_LANE_WIDTH_M,
    BUS_SIZE_M,
    CAR_SIZE_M,
    PARKED_VEHICLE_PROBABILITY,
    PERSON_CROSSING_PROBABILITY,
    PERSON_HEIGHT_RANGE_M,
    RIDER_ON_SIDEWALK_PROBABILITY,
    TRAIN_SIZE_M,
    TRUCK_SIZE_M,
    _draw_bicycle,
    _draw_car,
    _draw_large_vehicle,
    _draw_motorcycle,
    _draw_person,
    _draw_prop,
    _draw_rider,
)

HOOD_HEIGHT_RANGE = (0.06, 0.12)  # fraction of image height
HOOD_CENTRE_SHIFT_RANGE = (-0.05, 0.05)  # fraction of image width
HOOD_HALF_WIDTH_RANGE = (0.6, 0.8)  # fraction of image width
BORDER_PROBABILITY = 0.5  # target only, as some Cityscapes frames have one
BORDER_WIDTH_RANGE = (0.002, 0.008)  # fraction of image width

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
               with_border: bool, camera_height_m: float = CAMERA_HEIGHT_M, focal_factor: float = 1.0) -> Scene:
    """Draw one street layout (shared statistics) with one domain's object statistics.

    camera_height_m and focal_factor move the camera (the ``scale`` target shift; defaults: the usual one).
    Returns a Scene whose maps are (height_px, width_px).
    """
    p = Painter(width_px, height_px)
    cam = draw_camera(rng, width_px, height_px, camera_height_m, focal_factor)
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
    return p.scene(cam)
