"""The main table's paired differences (reporting.alignment_table) on hand-made rows."""

from globallocal.reporting import alignment_table


def row(family, local, seed, val, dev):
    return {"family": family, "local": local, "seed": seed, "val_miou": val, "dev_miou": dev}


def test_each_family_is_paired_with_the_weight_0_run_and_each_local_with_its_family_per_seed():
    rows = [row("none", 0, 0, 10.0, 11.0), row("none", 0, 1, 12.0, 13.0),
            row("advent", 0, 0, 11.0, 11.5), row("advent", 0, 1, 12.5, 12.0),
            row("advent", 1, 0, 11.2, 12.0), row("advent", 1, 1, 12.0, 12.0),
            row("source_only", 0, 0, 8.0, 9.0), row("source_only", 0, 1, 9.0, 10.0)]
    lines = alignment_table(rows, ("advent",)).splitlines()
    assert lines[0].startswith("| model | val mIoU | dev mIoU | compared with | val paired diff (s0, s1) |")
    by_name = {line.split(" | ")[0].lstrip("| "): line for line in lines[2:]}
    assert list(by_name) == ["source-only", "adapt, every alignment weight 0", "advent", "advent + local"]
    # advent - weight 0: +1.00, +0.50 (mean 0.75, sample std 0.35); dev: +0.50, -1.00 (mean -0.25, std 1.06)
    assert by_name["advent"] == ("| advent | 11.75 ± 1.06 | 11.75 ± 0.35 | weight 0 | +1.00, +0.50 | 0.75 ± 0.35 "
                                 "| -0.25 ± 1.06 |")
    # + local - advent: +0.20, -0.50
    assert " | advent | +0.20, -0.50 | -0.15 ± 0.49 | " in by_name["advent + local"]
    assert by_name["source-only"].endswith("|  |  | — | — |")
