"""Stage `oracle`: the same network trained on target train labels — the upper bound of the report."""

from pathlib import Path

from globallocal.config import load_validated_params
from globallocal.runtime import use_cpu_threads
from globallocal.stage_runner import run_stage
from globallocal.training.stage import training_stage


def main() -> None:
    params = load_validated_params()
    use_cpu_threads(params.train.cpu_threads)
    training_stage(
        params.stage_config("oracle"), Path("models/oracle.pt"), Path("reports/train/oracle"), supervise_on_target=True
    )


if __name__ == "__main__":
    run_stage(main)
