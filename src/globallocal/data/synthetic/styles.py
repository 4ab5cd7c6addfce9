"""Per-domain statistics and appearance: object counts and sizes, palette, textures, lighting, noise."""

from __future__ import annotations

from dataclasses import dataclass

from globallocal.data.synthetic.settings import SOURCE, TARGET_TRAIN, TARGET_VAL

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
