"""Appearance: a layout's label canvas rendered to RGB with one domain's palette, textures and camera."""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import cv2
import numpy as np

from globallocal.data.labels import CLASS_NAMES, NUM_CLASSES

from globallocal.data.synthetic.settings import _DOMAIN_STREAM, _PALETTE_STREAM
from globallocal.data.synthetic.codes import (
    BORDER_CODE,
    DETAIL_BRIGHT,
    DETAIL_DARK,
    DETAIL_LAMP,
    EGO_CODE,
    VOID_CODE,
)
from globallocal.data.synthetic import shifts
from globallocal.data.synthetic.shifts import TargetShift
from globallocal.data.synthetic.styles import DomainStyle
from globallocal.data.synthetic.geometry import Rng, Scene, _uniform

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


def render(scene: Scene, style: DomainStyle, palette: Palette, rng: Rng,
           shift: TargetShift = TargetShift(), shift_rng: Rng | None = None) -> np.ndarray:
    """Paint a Scene in one domain's look: (H, W, 3) uint8 RGB.

    shift (a target shift, with its own generator shift_rng) acts at three points: in the scene (fog),
    at the camera after its lighting (recolouring, exposure, glare) and at the sensor (photon noise).
    Without one, the image is what it was before shifts existed, byte for byte.
    """
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
    rgb = shifts.in_scene(rgb, scene, shift)
    lit = _apply_lighting(rgb, style, rng)
    lit = shifts.at_camera(lit, rgb, scene, shift, shift_rng)
    rgb = _apply_blur_and_noise(lit, style, rng)
    rgb = shifts.at_sensor(rgb, shift, shift_rng)
    return (np.clip(rgb, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
