"""Stage `data_report`: copy the data check's statistics (data/statistics/, written by `prepare`) to
reports/data/, where git keeps them.

A stage of its own because DVC removes a stage's outputs before running it: were reports/data/*.json
`prepare`'s outputs, a failed `prepare` (a bad dataset, a missing root) would leave the committed files
deleted in the working tree. This stage runs only once `prepare` has succeeded.
"""

from pathlib import Path

from globallocal import atomic
from globallocal.data.check import CLASS_FREQUENCIES_FILE, FINDINGS_FILE, SUMMARY_FILE
from globallocal.stage_runner import run_stage

STATISTICS = Path("data/statistics")
DATA_REPORTS = Path("reports/data")


def main() -> None:
    for name in (SUMMARY_FILE, FINDINGS_FILE, CLASS_FREQUENCIES_FILE):
        atomic.write_text(DATA_REPORTS / name, (STATISTICS / name).read_text())  # each whole or absent


if __name__ == "__main__":
    run_stage(main)
