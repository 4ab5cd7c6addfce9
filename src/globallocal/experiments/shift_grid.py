"""The pre-registered selection of a shift-grid cell (benchmarks/shift_grid.yaml, docs/shift_grid.md).

Only method-independent quantities on the target dev split enter: the oracle, the source-only model and
the adapt stage with every alignment weight at 0 (the *baseline*: source-only training plus target
BatchNorm statistics). headroom = oracle dev - baseline dev; the eligible cell with the largest headroom
is selected; ties (within ``tie_margin``) go to the lowest severity, then the higher baseline dev, then
the grid's order. Val numbers are carried along for the report and never read here.
"""

from __future__ import annotations

from dataclasses import dataclass

from globallocal.data.synthetic import SHIFT_SEVERITIES, SHIFTS
from globallocal.errors import UserError


@dataclass(frozen=True)
class SelectionRule:
    """The rule's thresholds (mIoU points, and a ratio of prepare wall times)."""

    min_gap: float
    min_baseline_dev: float
    max_prepare_ratio: float
    tie_margin: float


@dataclass(frozen=True)
class CellResult:
    """One measured cell: dev mIoU (percent) of the three models and its prepare wall time."""

    cell: str
    source_only_dev: float
    baseline_dev: float
    oracle_dev: float
    prepare_s: float

    @property
    def headroom(self) -> float:
        return self.oracle_dev - self.baseline_dev

    @property
    def gap(self) -> float:
        return self.oracle_dev - self.source_only_dev


def parse_cell(cell: str) -> tuple[str, int]:
    """'fog-2' -> ('fog', 2); 'none' -> ('none', 1). A bad name is a UserError naming it."""
    if cell == "none":
        return "none", 1
    name, _, severity = cell.rpartition("-")
    if name not in SHIFTS or name == "none" or not severity.isdigit() or int(severity) not in SHIFT_SEVERITIES:
        raise UserError(f"shift-grid cell {cell!r} is not <shift>-<severity> with shift one of "
                        f"{', '.join(SHIFTS[1:])} and severity one of {', '.join(map(str, SHIFT_SEVERITIES))}")
    return name, int(severity)


def ineligibility(result: CellResult, rule: SelectionRule, reference: CellResult, reference_cell: str,
                  stress_tests: tuple[str, ...]) -> str:
    """Why a measured cell cannot be selected ('' when it can)."""
    name, _ = parse_cell(result.cell)
    if result.cell == reference_cell:
        return "reference"
    if name in stress_tests:
        return "stress test"
    if result.gap < rule.min_gap:
        return f"gap {result.gap:.2f} < {rule.min_gap}"
    if result.baseline_dev < rule.min_baseline_dev:
        return f"baseline dev {result.baseline_dev:.2f} < {rule.min_baseline_dev}"
    if result.prepare_s > rule.max_prepare_ratio * reference.prepare_s:
        return f"prepare {result.prepare_s:.0f} s > {rule.max_prepare_ratio}x reference"
    return ""


def select_cell(results: list[CellResult], rule: SelectionRule, reference_cell: str,
                stress_tests: tuple[str, ...]) -> tuple[str | None, dict[str, str]]:
    """(selected cell or None, {cell: why not eligible, '' if eligible}); results in the grid's order."""
    by_cell = {result.cell: result for result in results}
    if reference_cell not in by_cell:
        raise UserError(f"the reference cell {reference_cell!r} has no result: it is measured first")
    reference = by_cell[reference_cell]
    reasons = {r.cell: ineligibility(r, rule, reference, reference_cell, stress_tests) for r in results}
    eligible = [r for r in results if not reasons[r.cell]]
    if not eligible:
        return None, reasons
    best = max(r.headroom for r in eligible)
    tied = [r for r in eligible if r.headroom >= best - rule.tie_margin]
    order = {r.cell: position for position, r in enumerate(results)}
    chosen = min(tied, key=lambda r: (parse_cell(r.cell)[1], -r.baseline_dev, order[r.cell]))
    return chosen.cell, reasons
