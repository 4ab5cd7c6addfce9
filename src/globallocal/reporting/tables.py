"""The one Markdown table renderer of the reports, and how a spread of values over seeds is written."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from globallocal.reporting.inputs import MISSING_VALUE

#: Column alignment codes of ``markdown_table``: left or right.
_ALIGN_RULE = {"l": "---", "r": "---:"}


def markdown_table(header: Sequence[str], align: str, rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table: ``header`` cells, one ``align`` letter per column (``l`` or ``r``), then ``rows``."""
    if len(align) != len(header):
        raise ValueError(f"align {align!r} has {len(align)} columns, the header {len(header)}")
    lines = [_row(header), "|" + "|".join(_ALIGN_RULE[code] for code in align) + "|"]
    lines += [_row(cells) for cells in rows]
    return "\n".join(lines)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def pm(values: Sequence[float], digits: int = 2) -> str:
    """``mean ± std`` over seeds with ``digits`` decimals; ``—`` when there is no value."""
    if len(values) == 0:
        return MISSING_VALUE
    mean, std = mean_std(values)
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def signed(values: Iterable[float]) -> str:
    """Per-seed paired differences, ``+0.12, -0.03``."""
    return ", ".join(f"{value:+.2f}" for value in values)


#: Two-sided 95% quantiles of Student's t by degrees of freedom (1-10); above 10, the normal's 1.96 widened
#: to 10's value (a slightly wide interval rather than a narrow one).
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def ci95(values: Sequence[float]) -> tuple[float, float] | None:
    """The 95% t-interval of the mean of paired differences over seeds; None under two values."""
    if len(values) < 2:
        return None
    mean, std = mean_std(values)
    half = _T975[min(len(values) - 1, 10)] * std / np.sqrt(len(values))
    return mean - half, mean + half


def interval(values: Sequence[float], digits: int = 2) -> str:
    """``mean [low, high]`` (95% t-interval) of paired differences, ``digits`` decimals; ``—`` under two values."""
    bounds = ci95(values)
    if bounds is None:
        return MISSING_VALUE
    return f"{np.mean(values):+.{digits}f} [{bounds[0]:+.{digits}f}, {bounds[1]:+.{digits}f}]"
