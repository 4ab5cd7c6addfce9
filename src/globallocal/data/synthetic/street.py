"""The street itself: ground, lane markings, facades (buildings, walls, fences, parks), trees, poles,
traffic lights and signs."""

from __future__ import annotations

import numpy as np

from globallocal.data.synthetic.codes import (
    BUILDING,
    DETAIL_BRIGHT,
    DETAIL_LAMP,
    FENCE,
    POLE,
    ROAD,
    SIDEWALK,
    TERRAIN,
    TRAFFIC_LIGHT,
    TRAFFIC_SIGN,
    VEGETATION,
    WALL,
)
from globallocal.data.synthetic.geometry import (
    Box,
    Camera,
    MAX_OBJECT_DEPTH_M,
    NEAREST_DEPTH_M,
    Painter,
    Point,
    Rng,
    Street,
    _ground_quad,
    _ordered_box,
    _pixel_width,
    _plane,
    _plane_box,
    _side_quad,
    _uniform,
)

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
