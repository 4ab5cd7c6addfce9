"""The embedded synthetic two-domain street-scene benchmark (docs/method.md, "The embedded synthetic benchmark").

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

Where each part lives
---------------------
``settings`` (what to generate, splits, folder names, the target shifts' names), ``codes`` (canvas
codes), ``styles`` (per-domain statistics and appearance), ``geometry`` (camera, street, Painter),
``street`` and ``objects`` (what is drawn), ``scene`` (one layout), ``rendering`` (layout -> RGB),
``shifts`` (the target-only shifts of the shift grid: fog, low light, season, car paint, scale, layout),
``writing`` (examples and files on disk).
"""

from globallocal.data.synthetic.settings import (
    MARKER_FILE,
    SEVERITIES as SHIFT_SEVERITIES,
    SHIFTS,
    SOURCE,
    SOURCE_DIR,
    SPLITS,
    TARGET_DIR,
    TARGET_TRAIN,
    TARGET_VAL,
    SyntheticConfig,
)
from globallocal.data.synthetic.writing import (
    generate_benchmark,
    generate_example,
    write_benchmark,
    write_source_examples,
)

__all__ = [
    "MARKER_FILE",
    "SHIFTS",
    "SHIFT_SEVERITIES",
    "SOURCE",
    "SOURCE_DIR",
    "SPLITS",
    "TARGET_DIR",
    "TARGET_TRAIN",
    "TARGET_VAL",
    "SyntheticConfig",
    "generate_benchmark",
    "write_benchmark",
    "generate_example",
    "write_source_examples",
]
