"""The one reader of reports/ablation.csv (written by ``python -m globallocal.experiments ablation``).

One row per model and run: ``family, local, selftrain, seed, val_miou, dev_miou, control_val_miou,
control_dev_miou, bn, shift, setting``. Rows of files older than a column get today's meaning of it
(``selftrain`` 0, learned BatchNorm, no shift, the committed setting).
"""

from __future__ import annotations

import csv
from pathlib import Path

ABLATION_FILE = Path("reports/ablation.csv")
#: The ``setting`` of rows run at the committed alignment weights (no ``--family-set``).
COMMITTED_SETTING = "committed"


def _score(text: str | None) -> float | None:
    return None if text in (None, "") else float(text)


def read_ablation(path: Path = ABLATION_FILE) -> list[dict]:
    """The rows, typed (ints, floats; a control score absent = None); no file = no rows."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [
            {"family": row["family"], "local": int(row["local"]), "selftrain": int(row.get("selftrain") or 0),
             "seed": int(row["seed"]), "val_miou": float(row["val_miou"]), "dev_miou": float(row["dev_miou"]),
             "control_val_miou": _score(row.get("control_val_miou")),
             "control_dev_miou": _score(row.get("control_dev_miou")),
             "bn": row.get("bn") or "learned", "shift": row.get("shift") or "none",
             "setting": row.get("setting") or COMMITTED_SETTING}
            for row in csv.DictReader(handle)
        ]


def cell_name(shift: str, severity: int) -> str:
    """The ``shift`` column of a benchmark cell: ``none``, or ``<shift>-<severity>``."""
    return "none" if shift == "none" else f"{shift}-{severity}"


def rows_of_cell(rows: list[dict], shift: str, bn: str, setting: str = COMMITTED_SETTING) -> list[dict]:
    """The rows of one benchmark cell (``shift`` column), BatchNorm protocol and setting."""
    return [row for row in rows if (row["shift"], row["bn"], row["setting"]) == (shift, bn, setting)]
