"""Things on the street: cars, trucks, buses, trains, persons, riders, two-wheelers and void props."""

from __future__ import annotations

import numpy as np

from globallocal.data.synthetic.codes import (
    BICYCLE,
    BUS,
    CAR,
    DETAIL_DARK,
    DETAIL_LAMP,
    MOTORCYCLE,
    PERSON,
    RIDER,
    TRAIN,
    TRUCK,
    VOID_CODE,
)
from globallocal.data.synthetic.geometry import (
    Camera,
    Painter,
    Rng,
    _ground_quad,
    _pixel_width,
    _plane,
    _plane_box,
    _side,
    _side_quad,
    _uniform,
)
from globallocal.data.synthetic.street import _box_points

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
def _draw_box(p: Painter, cam: Camera, x_m: float, depth_m: float, size_m: tuple[float, float],
              bottom_m: float, top_m: float, code: int, instance: int) -> None:
    """An upright box (width, length) whose rear face is at depth_m: the visible side, top and rear."""
    width, length = size_m
    left, right, far = x_m - width / 2, x_m + width / 2, depth_m + length
    side_x = _visible_side_x(x_m, width)
    if side_x is not None:
        p.polygon(_side_quad(cam, side_x, depth_m, far, bottom_m, top_m), code, instance)
    if top_m < cam.height_m:  # the camera looks down on it
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
