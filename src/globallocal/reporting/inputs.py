"""What the report reads, shared by its figures and its text: the evaluate stage's metrics (checked,
IoU as a number or "—") and the class-frequency domains of reports/data/class_frequencies.json."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from globallocal.errors import UserError

MISSING_VALUE = "—"
IOU_DECIMALS = 1
#: Domains of reports/data/class_frequencies.json, in plotting order.
FREQUENCY_DOMAINS = ("source", "target_train")
PERCENT = 100.0


def as_float(iou: float | None) -> float:
    return math.nan if iou is None else float(iou)


def format_iou(iou: float | None) -> str:
    value = as_float(iou)
    return MISSING_VALUE if math.isnan(value) else f"{value:.{IOU_DECIMALS}f}"


def check_models(metrics: Mapping, models: Sequence[str]) -> None:
    for model in models:
        if model not in metrics:
            raise UserError(
                f"metrics have no model {model!r} (found {list(metrics)}); evaluate it first "
                "or leave it out of the report's models"
            )
        for key in ("miou", "per_class_iou"):
            if key not in metrics[model]:
                raise UserError(
                    f"metrics for model {model!r} lack the key {key!r}; rerun the evaluate stage"
                )
