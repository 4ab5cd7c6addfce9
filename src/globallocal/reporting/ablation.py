"""The one reader of reports/ablation.csv (written by ``python -m globallocal.experiments ablation``).

One row per model and run: ``family, local, selftrain, seed, val_miou, dev_miou, control_val_miou,
control_dev_miou, bn, shift, setting, stats, backbone, probe_auc``. ``stats``: the BatchNorm statistics the
adapted model was scored with (``adapt.bn_stats``); ``backbone``: ``<model.arch>/<weights>`` (``random``,
``imagenet`` or ``file``, ``backbone_name``); ``probe_auc``: the domain probe's held-out AUC of the row's model
(reports/probe_auc.json; empty where the run did not write one). Rows of files older than a column get the
meaning it had then (``selftrain`` 0, learned BatchNorm, no shift, the committed setting, ``mixed``
statistics, MobileNetV3-small from random init, no probe).
"""

from __future__ import annotations

import csv
from pathlib import Path

ABLATION_FILE = Path("reports/ablation.csv")
#: The ``setting`` of rows run at the committed alignment weights (no ``--family-set``).
COMMITTED_SETTING = "committed"
#: What rows written before the ``stats`` and ``backbone`` columns ran: ADVENT's mixed statistics, the
#: embedded default's backbone of then.
OLD_STATS, OLD_BACKBONE = "mixed", "mobilenetv3_small/random"


def backbone_name(arch: str, weights: str | None) -> str:
    """The ``backbone`` column: the architecture and where its weights came from (``random`` init, the
    packaged ``imagenet`` weights, or a weights ``file``)."""
    return f"{arch}/{'random' if weights is None else 'imagenet' if weights == 'imagenet' else 'file'}"


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
             "setting": row.get("setting") or COMMITTED_SETTING, "stats": row.get("stats") or OLD_STATS,
             "backbone": row.get("backbone") or OLD_BACKBONE, "probe_auc": _score(row.get("probe_auc"))}
            for row in csv.DictReader(handle)
        ]


def cell_name(shift: str, severity: int) -> str:
    """The ``shift`` column of a benchmark cell: ``none``, or ``<shift>-<severity>``."""
    return "none" if shift == "none" else f"{shift}-{severity}"


def rows_of_cell(rows: list[dict], shift: str, bn: str, setting: str = COMMITTED_SETTING,
                 stats: str | None = None, backbone: str | None = None) -> list[dict]:
    """The rows of one benchmark cell (``shift`` column), BatchNorm protocol and setting; of one statistics
    setting and backbone where they are given (None: any)."""
    return [row for row in rows if (row["shift"], row["bn"], row["setting"]) == (shift, bn, setting)
            and stats in (None, row["stats"]) and backbone in (None, row["backbone"])]


def rows_of_regime(rows: list[dict], bn: str, stats: str, backbone: str) -> list[dict]:
    """The rows of one BatchNorm protocol, statistics setting and backbone: every cell, every setting."""
    return [row for row in rows if (row["bn"], row["stats"], row["backbone"]) == (bn, stats, backbone)]
