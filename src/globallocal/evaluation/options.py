"""The options of ``python -m globallocal evaluate``, parsed without importing torch (errors come at once)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from globallocal.errors import UserError

#: Input (width, height) for an ADVENT-layout state dict, which cannot record its training size: the paper's
#: Cityscapes input (a checkpoint of ours without a recorded size is refused instead: scoring.scoring_size).
DEFAULT_SIZE = (1024, 512)


@dataclass(frozen=True)
class EvaluateOptions:
    target_root: Path
    split: str
    out_dir: Path
    size: tuple[int, int] | None = None  # (width, height) the images are resized to; None: the checkpoint's
    synthia: bool = False
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    device: str = "auto"
    official_check: bool = True

    @classmethod
    def from_strings(cls, size: str | None, scales: str, **fields) -> EvaluateOptions:
        """From command-line text: ``size`` "1024x512" (None: the checkpoint's), ``scales`` "0.75,1.0,1.25"."""
        try:
            scale_values = tuple(float(scale) for scale in scales.split(","))
        except ValueError:
            raise UserError(f"--scales must be numbers separated by commas (got '{scales}')") from None
        if not scale_values or min(scale_values) <= 0:
            raise UserError(f"--scales '{scales}' must be positive")
        return cls(size=None if size is None else parse_size(size), scales=scale_values, **fields)


def parse_size(size: str) -> tuple[int, int]:
    """"1024x512" -> (1024, 512); anything else is a UserError naming --size."""
    try:
        width, height = (int(side) for side in size.lower().split("x"))
    except ValueError:
        raise UserError(f"--size must read WIDTHxHEIGHT, e.g. 1024x512 (got '{size}')") from None
    if width < 1 or height < 1:
        raise UserError(f"--size '{size}' must be positive")
    return width, height
