"""Stage `pretrain`: source-only training; adaptation and the fair source-only baseline start here."""

from pathlib import Path

from globallocal.config import load_validated_params
from globallocal.runtime import use_cpu_threads
from globallocal.stage_runner import run_stage
from globallocal.training.stage import training_stage


def main() -> None:
    params = load_validated_params()
    use_cpu_threads(params.train.cpu_threads)
    training_stage(params.stage_config("pretrain"), Path("models/pretrain.pt"), Path("reports/train/pretrain"))


if __name__ == "__main__":
    run_stage(main)
