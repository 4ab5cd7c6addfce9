"""``python -m globallocal.experiments``: the experiment runner (``globallocal.experiments.runner``)."""

import sys
from pathlib import Path

from globallocal.experiments.runner import main

if __name__ == "__main__":
    Path("dvc.yaml").is_file() or sys.exit("run from the repository root")
    main()
