"""The main table's paired differences (reporting.alignment_table) on hand-made rows."""

import pytest

from globallocal.reporting import alignment_table
from globallocal.reporting.tables import ci95, interval


def row(family, local, seed, val, dev, probe=None):
    return {"family": family, "local": local, "seed": seed, "val_miou": val, "dev_miou": dev, "probe_auc": probe}


def test_each_family_is_paired_with_the_weight_0_run_and_each_local_with_its_family_per_seed():
    rows = [row("none", 0, 0, 10.0, 11.0), row("none", 0, 1, 12.0, 13.0),
            row("advent", 0, 0, 11.0, 11.5, 0.8), row("advent", 0, 1, 12.5, 12.0, 0.9),
            row("advent", 1, 0, 11.2, 12.0), row("advent", 1, 1, 12.0, 12.0),
            row("adabn", 0, 0, 10.5, 11.0), row("adabn", 0, 1, 12.0, 12.0),
            row("source_only", 0, 0, 8.0, 9.0), row("source_only", 0, 1, 9.0, 10.0)]
    lines = alignment_table(rows, ("advent",)).splitlines()
    assert lines[0] == ("| model | val mIoU | dev mIoU | probe AUC | compared with | val paired diff (s0, s1) | "
                        "val diff, 95% CI | dev diff, 95% CI | val diff vs AdaBN (s0, s1) |")
    by_name = {line.split(" | ")[0].lstrip("| "): line for line in lines[2:]}
    assert list(by_name) == ["source-only", "AdaBN (source-only + target statistics)",
                             "adapt, every alignment weight 0", "advent", "advent + local"]
    # advent - weight 0: +1.00, +0.50 (mean 0.75, sample std 0.354, t(1) 12.706: half width 3.18);
    # dev: +0.50, -1.00 (mean -0.25, std 1.061: half width 9.53); against AdaBN: +0.50, +0.50
    assert by_name["advent"] == ("| advent | 11.75 ± 1.06 | 11.75 ± 0.35 | 0.850 ± 0.071 | weight 0 | +1.00, +0.50 "
                                 "| +0.75 [-2.43, +3.93] | -0.25 [-9.78, +9.28] | +0.50, +0.50 |")
    # + local - advent: +0.20, -0.50; no probe recorded: —
    assert " | — | advent | +0.20, -0.50 | -0.15 [" in by_name["advent + local"]
    assert by_name["source-only"].endswith("| — |  |  | — | — |  |")


def test_the_95_percent_interval_is_students_t_on_the_paired_differences():
    low, high = ci95([1.0, 2.0, 3.0])  # mean 2, sample std 1, t(2) 4.303, n 3
    assert low == pytest.approx(2 - 4.303 / 3 ** 0.5) and high == pytest.approx(2 + 4.303 / 3 ** 0.5)
    assert ci95([1.0]) is None and interval([1.0]) == "—"
    assert interval([1.0, 2.0, 3.0]) == "+2.00 [-0.48, +4.48]"
