"""What to generate: the benchmark's size and seed, its splits, and the folders and names it writes."""

from __future__ import annotations

from dataclasses import dataclass

from globallocal.errors import UserError

# --------------------------------------------------------------------------------------------
# Public configuration
# --------------------------------------------------------------------------------------------

#: Smallest image side the street geometry still draws sensibly at.
MIN_WIDTH_PX = 64
MIN_HEIGHT_PX = 32
#: The target shifts of the shift grid and their severities (what each does: the shifts module).
SHIFTS = ("none", "fog", "lowlight", "season", "carpaint", "scale", "layout", "swap")
SEVERITIES = (1, 2, 3)


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and seed of the generated benchmark; sizes are (width, height) in pixels.

    shift / shift_severity: the target-domain shift of the shift grid (globallocal.data.synthetic.shifts);
    "none" is the benchmark as it was before shifts existed.
    """

    seed: int
    num_source: int
    num_target_train: int
    num_target_val: int
    source_size: tuple[int, int]  # GTA5-like aspect (1914x1052)
    target_size: tuple[int, int]  # Cityscapes 2:1
    shift: str
    shift_severity: int

    def __post_init__(self) -> None:
        if self.shift not in SHIFTS:
            raise UserError(f"SyntheticConfig.shift is {self.shift!r}; allowed values: {', '.join(SHIFTS)}")
        if self.shift_severity not in SEVERITIES or isinstance(self.shift_severity, bool):
            raise UserError(f"SyntheticConfig.shift_severity is {self.shift_severity!r}; allowed values: "
                            f"{', '.join(map(str, SEVERITIES))}")
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
