"""Target-domain shifts that re-estimated BatchNorm statistics cannot remove (the shift grid).

The benchmark's own gap (palette, global lighting, uniform noise and blur) is mostly a shift of each
channel's mean and spread, which target BatchNorm statistics (AdaBN) remove on their own. Each shift
here varies across the image or by class, so no per-channel affine change undoes it:

* ``fog``: depth-dependent fog (Koschmieder's law): ``I = t * I0 + (1 - t) * A``, ``t = exp(-3.912 d / V)``
  with visibility ``V`` per severity and ``d`` the pixel's distance (ground-plane depth of its row, or of
  the ground it stands on); the sky becomes the airlight.
* ``lowlight``: dusk: exposure falls, lamps keep shining and glare (tail lights, traffic lights and a few
  oncoming headlights on the road), and photon (signal-dependent) noise is added.
* ``season``: autumn: vegetation only turns yellow / orange / red (a hue rotation per tree).
* ``carpaint``: another car-paint distribution: car bodies repainted in saturated colours.
* ``scale``: a wide-angle camera mounted higher (a van): shorter focal length, higher viewpoint.
* ``layout``: a label-prior stress test: a pedestrian zone with few vehicles and many people and bicycles,
  same appearance; output-space alignment is expected to fail here (it pulls towards the source prior).
* ``swap``: the positive control (docs/positive_control.md): road and sky exchange their appearance (each
  class's per-image colour mean and spread moved towards the other's), layout and labels unchanged. What
  tells road from sky in the target is then where it is (sky above the horizon, road below): information
  in the output layout and nowhere else, which output-space alignment can use and AdaBN cannot.

A shift applies to the target domain only (train, dev and val alike); ``none`` is the benchmark as it
was before shifts existed, byte for byte. A shift's own random draws come from a separate generator
seeded from ``(seed, split, index)``, so a shifted image keeps the unshifted one's layout and noise
(except ``layout`` and ``scale``, which change what is drawn) and stays deterministic per seed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import cv2
import numpy as np

from globallocal.data.synthetic.codes import (
    BORDER_CODE,
    CAR,
    DETAIL_LAMP,
    DETAIL_NONE,
    EGO_CODE,
    ROAD,
    SIDEWALK,
    SKY,
    TERRAIN,
    VEGETATION,
)
from globallocal.data.synthetic.geometry import CAMERA_HEIGHT_M, Rng, Scene
from globallocal.data.synthetic.settings import SEVERITIES, SHIFTS
from globallocal.data.synthetic.styles import ObjectStatistics

NONE = SHIFTS[0]
#: Keeps the shift's random stream apart from the image's (which must stay as it was).
SHIFT_STREAM = 200

# ---- fog ----------------------------------------------------------------------------------------
#: Meteorological visibility (metres at which contrast falls to 5 %) per severity.
FOG_VISIBILITY_M = {1: 150.0, 2: 70.0, 3: 35.0}
FOG_CONTRAST_LOG = -math.log(0.05)  # 2.996: t = exp(-FOG_CONTRAST_LOG * d / V) is 0.05 at d = V
FOG_AIRLIGHT_RGB = (0.8, 0.82, 0.84)
#: Codes of the ground plane: their depth follows from their row; everything else stands on the ground.
GROUND_CODES = (ROAD, SIDEWALK, TERRAIN, EGO_CODE, BORDER_CODE)

# ---- low light ----------------------------------------------------------------------------------
#: (exposure gain, photon-noise variance per unit intensity, oncoming headlights per image) per severity.
LOWLIGHT = {1: (0.45, 0.002, 1.0), 2: (0.3, 0.005, 2.0), 3: (0.18, 0.01, 3.0)}
GLARE_SIGMA_FRAC = 0.02  # halo Gaussian sigma / image height
GLARE_PEAK = 0.5  # additive intensity at the centre of an isolated lamp's halo
GLARE_RGB = (1.0, 0.9, 0.7)
HEADLIGHT_RADIUS_FRAC = 0.008  # a headlight's radius / image height
HEADLIGHT_SPACING_FRAC = 0.04  # between the two lamps of one vehicle / image height

# ---- season -------------------------------------------------------------------------------------
#: Hue rotation of vegetation (fraction of the wheel; green 0.3 -> yellow 0.16 -> orange 0.08) per severity.
SEASON_HUE_SHIFT = {1: -0.08, 2: -0.15, 3: -0.22}
SEASON_SATURATION_GAIN = {1: 1.0, 2: 1.15, 3: 1.3}
SEASON_TREE_JITTER = 0.03  # per-tree hue change around the season's shift

# ---- car paint ----------------------------------------------------------------------------------
#: (share of cars repainted, paint saturation) per severity.
CARPAINT = {1: (0.4, 0.5), 2: (0.7, 0.65), 3: (1.0, 0.8)}
#: Paint hues: red, orange, yellow, green, magenta (the benchmark's cars are muted blue).
CARPAINT_HUES = (0.0, 0.07, 0.14, 0.33, 0.88)

# ---- scale --------------------------------------------------------------------------------------
#: (camera height in metres, focal length factor) per severity: higher and wider than the 1.5 m camera.
SCALE = {1: (2.0, 0.85), 2: (2.6, 0.7), 3: (3.2, 0.55)}

# ---- layout -------------------------------------------------------------------------------------
#: (vehicle count factor, people and bicycle count factor) per severity.
LAYOUT = {1: (0.5, 2.0), 2: (0.25, 3.0), 3: (0.1, 4.0)}

# ---- swap (the positive control) ------------------------------------------------------------------
#: The two classes whose appearance is exchanged: their layouts differ most (above / below the horizon).
SWAPPED_CLASSES = (ROAD, SKY)
#: How far each class's colour moves to the other's per severity: 0.5 = both look alike (the mean of the
#: two), 1 = fully exchanged.
SWAP_SHARE = {1: 0.5, 2: 0.75, 3: 1.0}
#: Below this per-channel spread a class counts as flat (its deviations are not rescaled by it).
SWAP_MIN_STD = 1e-3


@dataclass(frozen=True)
class TargetShift:
    """One cell of the shift grid: a shift name from SHIFTS and a severity from SEVERITIES."""

    name: str = NONE
    severity: int = 1

    def __post_init__(self) -> None:
        if self.name not in SHIFTS or self.severity not in SEVERITIES:
            raise ValueError(f"unknown shift cell {self.name!r} / severity {self.severity!r}")

    @property
    def active(self) -> bool:
        return self.name != NONE

    @property
    def cell(self) -> str:
        """The cell's name, e.g. 'fog-2'; 'none' for the unshifted benchmark."""
        return NONE if not self.active else f"{self.name}-{self.severity}"

    def camera(self) -> tuple[float, float]:
        """(camera height in metres, focal length factor) of the target camera."""
        return SCALE[self.severity] if self.name == "scale" else (CAMERA_HEIGHT_M, 1.0)

    def objects(self, stats: ObjectStatistics) -> ObjectStatistics:
        """The target's object statistics under this shift (changed by ``layout`` only)."""
        if self.name != "layout":
            return stats
        vehicles, people = LAYOUT[self.severity]
        return dataclasses.replace(
            stats, cars=stats.cars * vehicles, trucks=stats.trucks * vehicles, buses=stats.buses * vehicles,
            train_probability=stats.train_probability * vehicles, persons=stats.persons * people,
            riders=stats.riders * people, parked_bicycles=stats.parked_bicycles * people,
        )


def shift_rng(seed: int, split_stream: int, index: int) -> Rng:
    """The shift's own generator for one image, apart from the image's stream."""
    return np.random.default_rng([seed, split_stream, index, SHIFT_STREAM])


# ---- the three points in rendering where a shift acts ---------------------------------------------


def in_scene(rgb: np.ndarray, scene: Scene, shift: TargetShift) -> np.ndarray:
    """Before the camera's lighting: fog, or the road / sky appearance swap. rgb (H, W, 3) float32 in about [0, 1]."""
    if shift.name == "fog":
        return apply_fog(rgb, depth_map(scene), FOG_VISIBILITY_M[shift.severity], FOG_AIRLIGHT_RGB)
    if shift.name == "swap":
        return swap_appearance(rgb, scene.canvas, *SWAPPED_CLASSES, SWAP_SHARE[shift.severity])
    return rgb


def at_camera(rgb: np.ndarray, lit_before: np.ndarray, scene: Scene, shift: TargetShift, rng: Rng) -> np.ndarray:
    """After the lighting, before blur and noise: recolouring, exposure and glare.

    lit_before (H, W, 3) is the image before lighting, whose lamp pixels keep shining in low light.
    """
    if shift.name == "season":
        return autumn(rgb, scene, shift.severity, rng)
    if shift.name == "carpaint":
        return repaint_cars(rgb, scene, shift.severity, rng)
    if shift.name == "lowlight":
        return dusk(rgb, lit_before, scene, shift.severity, rng)
    return rgb


def at_sensor(rgb: np.ndarray, shift: TargetShift, rng: Rng) -> np.ndarray:
    """After blur and read noise: photon noise in low light (variance proportional to the signal)."""
    if shift.name != "lowlight":
        return rgb
    variance_per_unit = LOWLIGHT[shift.severity][1]
    signal = np.clip(rgb, 0.0, None)
    return rgb + rng.standard_normal(rgb.shape, dtype=np.float32) * np.sqrt(variance_per_unit * signal)


# ---- fog ----------------------------------------------------------------------------------------


def depth_map(scene: Scene) -> np.ndarray:
    """(H, W) float32 distance in metres of what each pixel shows; inf for the sky.

    Ground pixels (road, sidewalk, terrain, hood, border) take the ground-plane depth of their row;
    every other pixel stands on the ground: it takes the depth of the nearest ground pixel below it in
    its column (the bottom row's when there is none). An object in front of a facade gives the facade
    pixels above it its own, nearer, depth: a proxy, good enough for fog that thickens with distance.
    """
    codes = scene.canvas
    h = codes.shape[0]
    rows = np.arange(h, dtype=np.float64)
    below = rows - scene.horizon_px
    with np.errstate(divide="ignore"):
        row_depth = np.where(below > 0, scene.camera_height_m * scene.focal_px / np.where(below > 0, below, 1.0),
                             np.inf)
    ground = np.isin(codes, GROUND_CODES)
    # Flipped upside down, a running maximum of the ground rows' indices finds the nearest ground below.
    flipped_index = np.where(ground[::-1], np.arange(h)[:, None], -1)
    nearest = np.maximum.accumulate(flipped_index, axis=0)[::-1]
    nearest_row = np.where(nearest >= 0, h - 1 - nearest, h - 1)
    depth = row_depth[nearest_row]
    depth[codes == SKY] = np.inf
    return depth.astype(np.float32)


def apply_fog(rgb: np.ndarray, depth_m: np.ndarray, visibility_m: float,
              airlight_rgb: tuple[float, float, float]) -> np.ndarray:
    """Koschmieder's law: (H, W, 3) rgb blended with the airlight by transmission exp(-2.996 d / V)."""
    transmission = np.exp(-FOG_CONTRAST_LOG * depth_m / visibility_m)[..., None]
    return transmission * rgb + (1 - transmission) * np.asarray(airlight_rgb, dtype=np.float32)


# ---- class-conditional recolouring --------------------------------------------------------------


def rotate_hue(rgb: np.ndarray, mask: np.ndarray, hue_shift: np.ndarray | float,
               saturation: np.ndarray | float | None = None, saturation_gain: float = 1.0) -> np.ndarray:
    """Rotate the hue (fraction of the wheel) of the masked pixels; everything else is left as it is.

    rgb (H, W, 3) float32; mask (H, W) bool; hue_shift a scalar or (H, W). saturation: set it (scalar or
    (H, W)) instead of scaling it by saturation_gain. Value (the brightest channel) is kept.
    """
    if not mask.any():
        return rgb
    pixels = np.clip(rgb[mask], 0.0, 1.0)[None]  # (1, N, 3): cv2 wants an image
    hsv = cv2.cvtColor(pixels, cv2.COLOR_RGB2HSV)  # hue in degrees
    shift = hue_shift[mask] if isinstance(hue_shift, np.ndarray) else hue_shift
    hsv[0, :, 0] = np.mod(hsv[0, :, 0] + 360.0 * shift, 360.0)
    if saturation is not None:
        hsv[0, :, 1] = saturation[mask] if isinstance(saturation, np.ndarray) else saturation
    else:
        hsv[0, :, 1] = np.clip(hsv[0, :, 1] * saturation_gain, 0.0, 1.0)
    out = rgb.copy()
    out[mask] = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]
    return out


def autumn(rgb: np.ndarray, scene: Scene, severity: int, rng: Rng) -> np.ndarray:
    """Vegetation pixels turn autumn-coloured: each tree (instance) its own hue around the season's."""
    per_instance = SEASON_HUE_SHIFT[severity] + rng.uniform(-SEASON_TREE_JITTER, SEASON_TREE_JITTER, 256)
    mask = scene.canvas == VEGETATION
    return rotate_hue(rgb, mask, per_instance[scene.instance].astype(np.float32),
                      saturation_gain=SEASON_SATURATION_GAIN[severity])


def repaint_cars(rgb: np.ndarray, scene: Scene, severity: int, rng: Rng) -> np.ndarray:
    """Car bodies (not windows, tyres or lamps) of a share of the cars get a saturated paint hue."""
    share, paint_saturation = CARPAINT[severity]
    repainted = rng.random(256) < share
    paint_hue = np.asarray(CARPAINT_HUES, dtype=np.float32)[rng.integers(len(CARPAINT_HUES), size=256)]
    mask = (scene.canvas == CAR) & (scene.detail == DETAIL_NONE) & repainted[scene.instance]
    if not mask.any():
        return rgb
    # Setting the hue: rotate by (paint hue - current hue), which rotate_hue applies per pixel.
    current = cv2.cvtColor(np.clip(rgb, 0.0, 1.0), cv2.COLOR_RGB2HSV)[..., 0] / 360.0
    return rotate_hue(rgb, mask, paint_hue[scene.instance] - current, saturation=paint_saturation)


# ---- low light ----------------------------------------------------------------------------------


def dusk(rgb: np.ndarray, lit_before: np.ndarray, scene: Scene, severity: int, rng: Rng) -> np.ndarray:
    """Exposure falls; lamps keep their brightness and glare, plus a few oncoming headlights on the road."""
    gain, _, headlights = LOWLIGHT[severity]
    h, w = scene.canvas.shape
    lamps = scene.detail == DETAIL_LAMP
    out = rgb * gain
    out[lamps] = lit_before[lamps]
    sources = lamps.astype(np.float32)
    road_rows, road_cols = np.nonzero((scene.canvas == ROAD) & (np.arange(h)[:, None] > scene.horizon_px))
    radius = max(1, round(HEADLIGHT_RADIUS_FRAC * h))
    spacing = HEADLIGHT_SPACING_FRAC * h
    for _ in range(rng.poisson(headlights) if len(road_rows) else 0):
        pick = rng.integers(len(road_rows))
        for side in (-0.5, 0.5):
            centre = (round(road_cols[pick] + side * spacing), int(road_rows[pick]))
            cv2.circle(sources, centre, radius, 1.0, thickness=-1)
    sigma = GLARE_SIGMA_FRAC * h
    halo = cv2.GaussianBlur(sources, (0, 0), sigma)
    # Blurred, a lamp of area a px peaks at about a / (2 pi sigma^2): scaled so that a headlight disc
    # peaks at GLARE_PEAK and smaller lamps (tail lights far away) glare less.
    halo *= GLARE_PEAK * 2 * math.pi * sigma**2 / max(math.pi * radius**2, 1.0)
    halo = np.maximum(halo, sources)  # the lamp itself is saturated
    return out + np.minimum(halo, 1.0)[..., None] * np.asarray(GLARE_RGB, dtype=np.float32)


# ---- swap (the positive control) ------------------------------------------------------------------


def swap_appearance(rgb: np.ndarray, codes: np.ndarray, first: int, second: int, share: float) -> np.ndarray:
    """Exchange two classes' appearance in one image, their pixels (the layout) untouched.

    rgb (H, W, 3) float32; codes (H, W) canvas codes. Each class's pixels get the other's per-channel colour
    mean and spread (x -> mean_other + (x - mean_own) * std_other / std_own: texture, markings and shading
    kept as deviations), blended with their own colour by ``share``. An image lacking either class is
    returned as it is (no appearance to exchange). No random number is drawn: every other pixel stays
    byte-identical.
    """
    masks = [codes == first, codes == second]
    if not all(mask.any() for mask in masks):
        return rgb
    moments = [(rgb[mask].mean(axis=0), rgb[mask].std(axis=0)) for mask in masks]
    out = rgb.copy()
    for (mask, (mean, std)), (other_mean, other_std) in zip(zip(masks, moments), moments[::-1]):
        scale = np.where(std > SWAP_MIN_STD, other_std / np.maximum(std, SWAP_MIN_STD), 1.0)
        exchanged = other_mean + (rgb[mask] - mean) * scale
        out[mask] = ((1 - share) * rgb[mask] + share * exchanged).astype(np.float32)
    return out
