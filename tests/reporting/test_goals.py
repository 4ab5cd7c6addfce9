"""The fair game's goals read off hand-made rows of reports/ablation.csv (reporting.goals)."""

from globallocal.reporting.goals import GOALS, check, goals_by_setting, goals_table


def row(family, local, seed, val, selftrain=0, control=None, probe=None):
    return {"family": family, "local": local, "selftrain": selftrain, "seed": seed, "val_miou": val,
            "dev_miou": val, "control_val_miou": control, "probe_auc": probe}


def goal(text_start):
    return next(g for g in GOALS if g.text.startswith(text_start))


def test_a_margin_goal_holds_on_a_seed_only_at_or_above_its_margin():
    rows = [row("none", 0, 0, 10.0), row("none", 0, 1, 10.0), row("advent", 0, 0, 11.0), row("advent", 0, 1, 10.99)]
    result = check(goal("AdvEnt >= weight 0"), rows)
    assert result["seeds"] == [0, 1] and result["met"] == [True, False]
    assert [round(d, 2) for d in result["diffs"]] == [1.0, 0.99]


def test_the_probe_goal_asks_for_a_lower_auc_and_self_training_reads_its_control():
    rows = [row("none", 0, 0, 10.0, probe=0.9), row("adaptsegnet", 0, 0, 12.5, probe=0.85),
            row("advent", 1, 0, 14.0, selftrain=1, control=11.5)]
    assert check(goal("AdaptSegNet's probe"), rows)["met"] == [True]
    assert check(goal("AdaptSegNet >= weight 0"), rows)["met"] == [True]
    selftrain = check(goal("self-training"), rows)
    assert selftrain["diffs"] == [2.5] and selftrain["met"] == [True]


def test_the_table_says_per_cell_what_was_not_run_and_how_many_seeds_meet_a_goal():
    rows = {"none": [row("adabn", 0, 0, 10.0), row("adabn", 0, 1, 10.0), row("advent", 1, 0, 10.5),
                     row("advent", 1, 1, 9.0)]}
    lines = goals_table(rows).splitlines()
    assert "| adapted (AdvEnt + local) >= AdaBN, val | none | s0 +0.50, s1 -1.00 | -0.25 [" in lines[2]
    assert lines[2].endswith("| not met (1/2 seeds) |")
    assert lines[3] == "| adapted (AdvEnt + local) >= AdaBN, val | swap-3 | — | — | not run |"


def test_another_setting_gets_the_goals_its_rows_can_be_checked_on_after_the_committed_table():
    def cell(r, shift, setting):
        return {**r, "shift": shift, "setting": setting}

    rows = [cell(row("none", 0, 0, 10.0), "swap-3", "committed"), cell(row("adaptsegnet", 0, 0, 10.1), "swap-3",
            "committed"), cell(row("none", 0, 0, 10.0), "swap-3", "x100"), cell(row("adaptsegnet", 0, 0, 12.5),
            "swap-3", "x100")]
    committed, other = goals_by_setting(rows).split("Setting `x100`")
    assert "| AdaptSegNet >= weight 0 + 2.0, val | swap-3 | s0 +0.10 | — | not met (0/1 seeds) |" in committed
    assert "| AdvEnt >= weight 0 + 1.0, val | none | — | — | not run |" in committed
    assert "| AdaptSegNet >= weight 0 + 2.0, val | swap-3 | s0 +2.50 | — | met (1/1 seeds) |" in other
    assert "not run" not in other
