"""The pre-registered shift-grid selection rule: dev headroom, eligibility, ties; and the committed grid."""

from pathlib import Path

import pytest
import yaml

from globallocal.errors import UserError
from globallocal.experiments.shift_grid import CellResult, SelectionRule, parse_cell, select_cell

RULE = SelectionRule(min_gap=5.0, min_baseline_dev=10.0, max_prepare_ratio=1.5, tie_margin=1.0)
GRID_FILE = Path(__file__).resolve().parent.parent / "benchmarks" / "shift_grid.yaml"


def cell(name, source_only, baseline, oracle, prepare_s=60.0):
    return CellResult(name, source_only_dev=source_only, baseline_dev=baseline, oracle_dev=oracle,
                      prepare_s=prepare_s)


REFERENCE = cell("none", 12.0, 16.0, 28.0)


def select(*cells):
    return select_cell([REFERENCE, *cells], RULE, "none", ("layout",))


def test_the_cell_with_the_largest_dev_headroom_is_selected():
    chosen, reasons = select(cell("fog-2", 8.0, 12.0, 26.0), cell("season-2", 9.0, 11.0, 28.0))
    assert chosen == "season-2"  # headroom 17.0 against 14.0
    assert reasons == {"none": "reference", "fog-2": "", "season-2": ""}


def test_the_reference_and_the_stress_test_are_never_selected():
    chosen, reasons = select(cell("layout-2", 5.0, 11.0, 40.0), cell("fog-2", 8.0, 12.0, 20.0))
    assert chosen == "fog-2"
    assert reasons["layout-2"] == "stress test"


def test_a_cell_without_a_real_gap_or_a_usable_baseline_or_over_budget_is_not_eligible():
    chosen, reasons = select(
        cell("fog-3", 22.0, 12.0, 26.0),  # gap 4.0
        cell("lowlight-3", 2.0, 8.0, 30.0),  # baseline 8.0
        cell("scale-3", 2.0, 12.0, 30.0, prepare_s=91.0),  # 91 s > 1.5 x 60 s
    )
    assert chosen is None
    assert reasons["fog-3"] == "gap 4.00 < 5.0"
    assert reasons["lowlight-3"] == "baseline dev 8.00 < 10.0"
    assert reasons["scale-3"] == "prepare 91 s > 1.5x reference"


def test_ties_go_to_the_lower_severity_then_the_better_baseline_then_the_grid_order():
    # headrooms 15.0, 14.5, 14.2: all within 1.0 of the best
    assert select(cell("fog-3", 5.0, 11.0, 26.0), cell("season-2", 5.0, 12.0, 26.5),
                  cell("carpaint-2", 5.0, 12.8, 27.0))[0] == "carpaint-2"
    assert select(cell("fog-2", 5.0, 12.0, 26.0), cell("season-2", 5.0, 12.5, 27.0))[0] == "season-2"
    assert select(cell("fog-2", 5.0, 12.0, 26.5), cell("season-2", 5.0, 12.0, 26.5))[0] == "fog-2"
    # outside the margin the larger headroom wins whatever its severity
    assert select(cell("fog-3", 5.0, 11.0, 27.1), cell("season-1", 5.0, 12.0, 27.0))[0] == "fog-3"


def test_val_plays_no_part():
    assert "val" not in " ".join(CellResult.__dataclass_fields__)


def test_the_reference_must_have_been_measured():
    with pytest.raises(UserError, match="reference cell 'none' has no result"):
        select_cell([cell("fog-2", 8.0, 12.0, 26.0)], RULE, "none", ())


def test_cell_names_are_shift_dash_severity():
    assert parse_cell("fog-2") == ("fog", 2)
    assert parse_cell("none") == ("none", 1)
    for bad in ("fog-4", "snow-1", "fog", "none-2"):
        with pytest.raises(UserError, match=f"cell '{bad}' is not <shift>-<severity>"):
            parse_cell(bad)


def test_the_committed_grid_is_every_shift_at_every_severity_with_the_rule_above():
    spec = yaml.safe_load(GRID_FILE.read_text())
    assert spec["reference"] == "none" and spec["stress_tests"] == ["layout"]
    assert sorted(spec["cells"]) == sorted(f"{shift}-{severity}" for shift in
                                           ("fog", "lowlight", "season", "carpaint", "scale", "layout")
                                           for severity in (1, 2, 3))
    assert [c for c in spec["cells"] if c.endswith("-2")] == spec["cells"][:6]  # severity 2 measured first
    rule = spec["rule"]
    assert SelectionRule(rule["min_gap"], rule["min_baseline_dev"], rule["max_prepare_ratio"],
                         rule["tie_margin"]) == RULE
    assert spec["baseline_overrides"] == {"adapt.global_family": "none", "adapt.lambda_adv_local": 0}
