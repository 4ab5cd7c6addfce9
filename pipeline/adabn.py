"""Stage `adabn`: the source-only model with its BatchNorm statistics re-estimated on target train (AdaBN).

No gradient step and no parameter change: the row that shows how much of "adaptation" target
statistics alone give. Writes models/adabn.pt, which `evaluate` scores like every other model.
"""

from pathlib import Path

from globallocal import config
from globallocal.checkpoints import CheckpointDescription, model_from_checkpoint, save_checkpoint
from globallocal.runtime import resolve_device, use_cpu_threads
from globallocal.stage_runner import run_stage
from globallocal.training.adabn import adapt_batchnorm

SOURCE_ONLY = Path("models/source_only.pt")
ADABN = Path("models/adabn.pt")


def main() -> None:
    params = config.load_validated_params()
    use_cpu_threads(params.train.cpu_threads)
    model, checkpoint = model_from_checkpoint(SOURCE_ONLY)
    batches = adapt_batchnorm(
        model, params.data_config(), params.adabn.batch_size, resolve_device(params.device)
    )
    save_checkpoint(ADABN, model.cpu(), checkpoint["model_spec"], {"iteration": checkpoint.get("iteration", 0)},
                    description=CheckpointDescription.of_data(params.data))
    if batches:
        print(f"adabn: BatchNorm statistics of {SOURCE_ONLY} re-estimated on {batches} target train batches -> {ADABN}")
    else:
        print(f"adabn: {SOURCE_ONLY} has no BatchNorm running statistics (frozen or GroupNorm); {ADABN} is a copy")


if __name__ == "__main__":
    run_stage(main)
