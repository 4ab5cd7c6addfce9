"""The fair game's goals (docs/fair_game.md, section 5), checked seed by seed on the rows of
reports/ablation.csv: ``python -m globallocal.experiments goals`` writes reports/study_goals.md.

Each goal compares two rows of one cell and one seed (a model against a baseline, a margin in val mIoU
points, or the domain probe's AUC); a goal is met on a cell when it holds on every seed that has both rows.
The goals are the issue's, fixed before the study ran; this module only reads them off the table.
"""

from __future__ import annotations

from dataclasses import dataclass

from globallocal.reporting.ablation import COMMITTED_SETTING
from globallocal.reporting.inputs import MISSING_VALUE
from globallocal.reporting.tables import interval, markdown_table


@dataclass(frozen=True)
class Goal:
    """``model`` >= ``baseline`` + ``margin`` on ``key`` (or, with ``below``, ``model`` < ``baseline``).

    A side is ``(family, local, selftrain)``; ``control`` reads the self-trained row's control columns as
    the baseline. ``cells``: the ``shift`` values it is checked on.
    """

    text: str
    cells: tuple[str, ...]
    model: tuple[str, int, int]
    baseline: tuple[str, int, int]
    margin: float = 0.0
    key: str = "val_miou"
    below: bool = False
    control: bool = False


ADAPTED = ("advent", 1, 0)  # the committed default's adapted model: AdvEnt + local
POSITIVE_CONTROL = "swap-3"
GOALS = (
    Goal("adapted (AdvEnt + local) >= AdaBN, val", ("none", POSITIVE_CONTROL, "scale-1"), ADAPTED, ("adabn", 0, 0)),
    Goal("AdaptSegNet >= weight 0 + 2.0, val", (POSITIVE_CONTROL,), ("adaptsegnet", 0, 0), ("none", 0, 0), 2.0),
    Goal("AdaptSegNet's probe AUC < weight 0's", (POSITIVE_CONTROL,), ("adaptsegnet", 0, 0), ("none", 0, 0),
         key="probe_auc", below=True),
    Goal("AdvEnt >= weight 0 + 1.0, val", ("none", "scale-1"), ("advent", 0, 0), ("none", 0, 0), 1.0),
    Goal("AdvEnt + local >= AdvEnt + 0.5, val", ("none", "scale-1"), ADAPTED, ("advent", 0, 0), 0.5),
    Goal("self-training >= its control + 2.0, val", ("none", "scale-1"), ("advent", 1, 1), ("advent", 1, 1), 2.0,
         control=True),
)


def _values(rows: list[dict], side: tuple[str, int, int], key: str) -> dict[int, float]:
    family, local, selftrain = side
    return {row["seed"]: row[key] for row in rows
            if (row["family"], row["local"], row["selftrain"]) == (family, local, selftrain)
            and row.get(key) is not None}


def check(goal: Goal, rows: list[dict]) -> dict:
    """One goal on one cell's rows: the per-seed differences (model - baseline), which seeds meet it."""
    model = _values(rows, goal.model, goal.key)
    base_key = "control_" + goal.key if goal.control else goal.key
    base = _values(rows, goal.baseline, base_key)
    seeds = sorted(set(model) & set(base))
    diffs = [model[s] - base[s] for s in seeds]
    met = [d < 0 if goal.below else d >= goal.margin for d in diffs]
    return {"seeds": seeds, "diffs": diffs, "met": met}


def goals_table(rows_by_cell: dict[str, list[dict]], show_missing: bool = True) -> str:
    """Markdown: one line per (goal, cell): per-seed differences, their mean and 95% interval, and on how many
    seeds the goal holds; a (goal, cell) without rows says ``not run`` (left out without ``show_missing``)."""
    body = []
    for goal in GOALS:
        for cell in goal.cells:
            result = check(goal, rows_by_cell.get(cell, []))
            if not result["seeds"]:
                if show_missing:
                    body.append([goal.text, cell, MISSING_VALUE, MISSING_VALUE, "not run"])
                continue
            digits = 3 if goal.key == "probe_auc" else 2
            per_seed = ", ".join(f"s{s} {d:+.{digits}f}" for s, d in zip(result["seeds"], result["diffs"]))
            held = sum(result["met"])
            verdict = ("met" if held == len(result["met"]) else "not met") + f" ({held}/{len(result['met'])} seeds)"
            body.append([goal.text, cell, per_seed, interval(result["diffs"], digits), verdict])
    return markdown_table(["goal", "cell", "model - baseline per seed", "mean [95% CI]", "verdict"], "lllrl", body)


def goals_by_setting(rows: list[dict]) -> str:
    """The goals on one regime's rows: the committed weights' table in full, then, for each other setting
    (say ``dev-weights``: a family's dev-chosen weights), the goals its rows can be checked on."""
    cells = dict.fromkeys(shift for goal in GOALS for shift in goal.cells)
    settings = [COMMITTED_SETTING] + sorted({row["setting"] for row in rows} - {COMMITTED_SETTING})
    parts = []
    for setting in settings:
        by_cell = {cell: [row for row in rows if (row["shift"], row["setting"]) == (cell, setting)] for cell in cells}
        if setting == COMMITTED_SETTING:
            parts.append(goals_table(by_cell))
        elif any(check(goal, by_cell.get(cell, []))["seeds"] for goal in GOALS for cell in goal.cells):
            parts.append(f"Setting `{setting}` (its own weights; each model paired with the weight-0, AdaBN and oracle "
                         f"runs of its own setting and seed):\n\n" + goals_table(by_cell, show_missing=False))
    return "\n\n".join(parts)
