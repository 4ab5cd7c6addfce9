"""Stage `selftrain` (self-training on pseudo-labelled target train) and its fair control `selftrain_control`.

`python pipeline/selftrain.py` starts from models/adapted.pt (or source_only.pt: `selftrain.start`), labels
target train with its confident predictions and trains on source labels + pseudo-labels; it also writes
reports/selftrain/: the pseudo-label precision per class against target-train ground truth and a few dev
images' pseudo-labels (for the report only; no ground truth reaches training). `--control` runs the very
same schedule from the same start without the pseudo-label loss (the target batches still forwarded, so
BatchNorm sees the same data), so the gain is the pseudo-labels' and not the extra iterations'.
`selftrain.iterations: 0` writes a copy of the start model (its weights and training state, described as
every checkpoint is: globallocal.checkpoints).
"""

import argparse
import shutil
from pathlib import Path

import numpy as np

from globallocal import atomic, config
from globallocal.checkpoints import CheckpointDescription, copy_checkpoint, model_from_checkpoint
from globallocal.data.file_lists import TARGET_DEV_LIST, TARGET_TRAIN_LIST, TARGET_VAL_LIST, read_list
from globallocal.data.labels import CLASS_NAMES, NUM_CLASSES
from globallocal.data.loading import target_dataset
from globallocal.runtime import resolve_device, use_cpu_threads
from globallocal.stage_runner import run_stage
from globallocal.training import selftraining
from globallocal.training.stage import training_stage

DIAGNOSTICS = Path("reports/selftrain")


def write_diagnostics(params: config.Params, start: Path, st: selftraining.SelfTrainingConfig) -> None:
    """Label target train and the first dev images with the start model's thresholds; score against truth."""
    data = params.data
    model, _ = model_from_checkpoint(start)
    model.to(resolve_device(params.device))
    device = next(model.parameters()).device

    def labelled(names):
        return target_dataset(data.target_root, "train", names, data.target_size, model.input_normalization,
                              with_labels=True)

    train_set = labelled(read_list(data.lists_dir / TARGET_TRAIN_LIST))
    labels = selftraining.label_dataset(model, train_set, device, st, NUM_CLASSES)
    precision, share = selftraining.pseudo_label_precision(labels.labels, selftraining.labels_of(train_set),
                                                           NUM_CLASSES)
    dev_set = labelled(read_list(data.lists_dir / TARGET_DEV_LIST)[: params.evaluate.num_qualitative])
    confidence, prediction = selftraining.predict(model, dev_set, device)
    dev_labels = selftraining.apply_thresholds(confidence, prediction, labels.thresholds)
    staging = atomic.staging_dir(DIAGNOSTICS)
    atomic.write_json(staging / "pseudo_labels.json", {
        "start": str(start), "threshold_rule": st.threshold_rule, "top_p": st.top_p,
        "kept_share": 100.0 * labels.kept_share(),
        "per_class": {name: {"precision": p, "share_of_kept": s, "threshold": float(t)}
                      for name, p, s, t in zip(CLASS_NAMES, precision, share, labels.thresholds.tolist())},
    })
    np.savez_compressed(staging / "dev_samples.npz", names=np.array(dev_set.names),
                        **selftraining.samples_array(dev_set, dev_labels, len(dev_set)))
    atomic.replace_dir(staging, DIAGNOSTICS)


#: The one file of a self-training log folder when nothing was trained (an empty folder makes every dvc
#: command warn "'reports/train/selftrained' is empty").
COPY_NOTE = "NOT_TRAINED.txt"


def write_copy_note(log_dir: Path, start: Path, out: Path) -> None:
    """The log folder of a stage that copies its start model: a note saying so, in place of a training log."""
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir(parents=True)
    atomic.write_text(log_dir / COPY_NOTE, f"selftrain.iterations is 0: {out} is a copy of {start}; nothing was "
                                           "trained, so there is no training log.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--control", action="store_true", help="same schedule, no pseudo-label loss")
    args = parser.parse_args()
    params = config.load_validated_params()
    use_cpu_threads(params.train.cpu_threads)
    st = params.selftrain_config()
    start = Path(f"models/{params.selftrain.start}.pt")
    name = "selftrain_control" if args.control else "selftrained"
    out, log_dir = Path(f"models/{name}.pt"), Path(f"reports/train/{name}")
    data = params.data
    held_out = read_list(data.lists_dir / TARGET_DEV_LIST) + read_list(data.lists_dir / TARGET_VAL_LIST)
    selftraining.check_held_out(read_list(data.lists_dir / TARGET_TRAIN_LIST), held_out)
    if not args.control:
        write_diagnostics(params, start, st)
    if params.selftrain.iterations == 0:
        write_copy_note(log_dir, start, out)
        copy_checkpoint(start, out, CheckpointDescription.of_data(data))
        return
    method = None if args.control else selftraining.SelfTraining(st, held_out, NUM_CLASSES)
    training_stage(params.stage_config("selftrain"), out, log_dir, init_checkpoint=start, target_stream=True,
                   self_training=method)


if __name__ == "__main__":
    run_stage(main)
