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


def pm(values: Sequence[float]) -> str:
    """``mean ± std`` over seeds with two decimals; ``—`` when there is no value."""
    if len(values) == 0:
        return MISSING_VALUE
    mean, std = mean_std(values)
    return f"{mean:.2f} ± {std:.2f}"


def signed(values: Iterable[float]) -> str:
    """Per-seed paired differences, ``+0.12, -0.03``."""
    return ", ".join(f"{value:+.2f}" for value in values)
