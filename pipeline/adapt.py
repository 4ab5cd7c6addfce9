"""Stage `adapt` (joint global + local alignment) and its fair baseline `source_only`.

`python pipeline/adapt.py` adapts from the pretrained weights. `python pipeline/adapt.py --source-only`
runs the very same schedule with every alignment term off, so that the source-only model the report
compares against has had exactly as many source-supervised iterations as the adapted one.
"""

import argparse
from pathlib import Path

from globallocal.config import load_validated_params
from globallocal.runtime import use_cpu_threads
from globallocal.stage_runner import run_stage
from globallocal.training.stage import training_stage

PRETRAINED = Path("models/pretrain.pt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source-only", action="store_true", help="same schedule, no alignment")
    args = parser.parse_args()
    params = load_validated_params()
    use_cpu_threads(params.train.cpu_threads)
    name = "source_only" if args.source_only else "adapted"
    training_stage(
        params.stage_config("adapt", aligned=not args.source_only),
        Path(f"models/{name}.pt"),
        Path(f"reports/train/{name}"),
        init_checkpoint=PRETRAINED,
    )


if __name__ == "__main__":
    run_stage(main)
