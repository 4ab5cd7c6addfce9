"""A training stage end to end, as the stage scripts in ``pipeline/`` run it: its ``StageConfig`` (built
once from params.yaml by ``Params.stage_config``) -> relaunch under torchrun when asked, seeding, datasets
and loaders, model, resume from snapshots, the loop, the checkpoint and the dvclive log. No method logic
here (that is ``loop.py`` and ``alignment/``)."""

from __future__ import annotations

import shutil
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from dvclive import Live

from globallocal import atomic
from globallocal.checkpoints import CheckpointDescription, model_from_checkpoint, save_checkpoint
from globallocal.data.crops import training_crops
from globallocal.data.file_lists import SOURCE_LIST, TARGET_TRAIN_LIST, read_list
from globallocal.data.labels import NUM_CLASSES
from globallocal.data.loading import DataConfig, resolve_num_workers, source_dataset, target_dataset
from globallocal.models import build_model
from globallocal.runtime import resolve_device, seed_everything
from globallocal.training import distributed
from globallocal.training.adabn import adapt_batchnorm
from globallocal.training.distributed import LaunchConfig
from globallocal.training.loop import RunOptions, build_train_state, train
from globallocal.training.precision import check_precision
from globallocal.training.snapshots import (
    SNAPSHOT_ROOT,
    SnapshotConfig,
    Snapshots,
    code_digest,
    file_digest,
    fingerprint,
)
from globallocal.training.state import TrainConfig


@dataclass(frozen=True)
class StageConfig:
    """Everything one training stage runs with; no defaults (``Params.stage_config`` builds it from params.yaml).

    ``train.alignment`` is set for the adapt stage's aligned run only; ``model_spec`` holds
    ``build_model``'s arguments (a stage that starts from a checkpoint takes the checkpoint's instead).
    """

    launch: LaunchConfig
    device: str
    seed: int
    num_workers: int | str
    batch_size: int
    train: TrainConfig
    model_spec: dict
    data: DataConfig
    snapshots: SnapshotConfig
    #: Images per batch when ``train.bn_stats`` is ``reestimate`` (the adabn stage's batch size).
    adabn_batch_size: int


def open_live(log_dir: Path, resume: bool = False) -> Live:
    """A dvclive log that leaves dvc.yaml and DVC experiments alone (the pipeline declares plots).

    Fresh unless ``resume``: then it continues the log a snapshot restored (steps are iterations).
    """
    if not resume:
        shutil.rmtree(log_dir, ignore_errors=True)
    return Live(str(log_dir), dvcyaml=False, save_dvc_exp=False, resume=resume)


def training_stage(
    config: StageConfig,
    checkpoint_out: Path,
    log_dir: Path,
    init_checkpoint: Path | None = None,
    target_stream: bool = False,
    supervise_on_target: bool = False,
    self_training=None,
) -> dict:
    """Train one model as ``config`` says and write its checkpoint and dvclive log.

    supervise_on_target: the oracle — target train labels take the source's place, no target stream.
    ``config.train.alignment`` set: the adapt stage — global + local alignment on the target train images
    (implies target_stream).
    target_stream: forward unlabelled target train batches in training mode (BatchNorm sees them; the
    aligners and the self-training term act on them); selftrain and its control.
    The trained model keeps the BatchNorm statistics ``train_config.bn_stats`` says (``Params.bn_stats``):
    ``domain_specific`` is the loop's (the target's set), ``reestimate`` AdaBN on target train here, after
    the last step (with ``adabn.batch_size``, as the adabn stage), so the model saved is AdaBN's statistics
    on the trained weights.
    self_training: a ``selftraining.SelfTraining`` that pseudo-labels the target stream: it wraps the target
    set and attaches its term before the one ``train`` call (no snapshots: its labels and teacher are not in
    them; the stage is short).
    """
    launch = config.launch
    distributed.relaunch_under_torchrun(launch)  # returns in each torchrun worker, or at once for one process
    context = distributed.start(launch, resolve_device(config.device))
    data, seed, train_config, model_spec = config.data, config.seed, config.train, config.model_spec
    aligned = train_config.alignment is not None
    seed_everything(context.rank_seed(seed))
    device = context.device
    check_precision(train_config.precision, device)

    if init_checkpoint is None:
        model = build_model(**model_spec)
    else:
        model, checkpoint = model_from_checkpoint(init_checkpoint)
        model_spec = checkpoint["model_spec"]
    model.to(device)
    norm = model.input_normalization

    lists = data.lists_dir
    if supervise_on_target:
        supervised = target_dataset(
            data.target_root, "train", read_list(lists / TARGET_TRAIN_LIST), data.target_size, norm, with_labels=True
        )
    else:
        supervised = source_dataset(
            data.source, data.source_root, read_list(lists / SOURCE_LIST), data.source_size, norm
        )
    batch = config.batch_size
    workers = resolve_num_workers(config.num_workers, launch.nproc_per_node, device)
    source_loader = context.loader(training_crops(supervised, data.train_crop), batch, seed, workers)
    target_loader = None
    if aligned or target_stream:
        unlabelled = target_dataset(
            data.target_root, "train", read_list(lists / TARGET_TRAIN_LIST), data.target_size, norm, with_labels=False
        )
        if self_training is not None:
            unlabelled = self_training.wrap_target(unlabelled)  # pseudo-labels at full size, cropped with the image
        target_loader = context.loader(training_crops(unlabelled, data.train_crop), batch, seed + 1, workers)

    if context.is_main:  # rank 0 alone writes
        atomic.check_writable(checkpoint_out)
    state = build_train_state(model, train_config, NUM_CLASSES)
    context.distribute(state)
    # Snapshots live outside DVC's outputs on purpose: see globallocal.training.snapshots. One process only: a
    # data-parallel run that is killed starts over (README, Known limits).
    snapshots = None
    if not context.is_distributed and self_training is None:
        snapshots = Snapshots(
            SNAPSHOT_ROOT / log_dir.name,
            fingerprint(
                train=train_config, model=model_spec, data=data, seed=seed, batch_size=batch,
                supervise_on_target=supervise_on_target, code=code_digest(),
                lists={path.name: file_digest(path) for path in sorted(lists.glob("*.txt"))},
                init=file_digest(init_checkpoint) if init_checkpoint is not None else None,
            ),
            config.snapshots,
            attachments={"live": log_dir},
        )
    resume = snapshots.load(log_dir.name) if snapshots is not None else None
    try:
        with open_live(log_dir, resume=resume is not None) if context.is_main else nullcontext() as live:
            if self_training is not None:
                self_training.attach(state, train_config, device)
            last = train(
                state, train_config, source_loader, target_loader, device,
                # Titled by the run (adapted, source_only, ...), as the resume and Ctrl-C lines are.
                RunOptions(live=live, progress=context.is_main, description=log_dir.name, snapshots=snapshots,
                           resume=resume),
            )
    except BaseException:
        if context.is_main:
            shutil.rmtree(log_dir, ignore_errors=True)  # no partial log; a resume restores it from the snapshot
        print(file=sys.stderr)  # end the progress bar's line, so that an error message stands on its own
        raise
    context.finish(state.model)
    if train_config.bn_stats == "reestimate":
        # In the memory format the adabn stage's model has (a checkpoint loads contiguous): the very same numbers.
        state.model.to(memory_format=torch.contiguous_format)
        batches = adapt_batchnorm(state.model, data, config.adabn_batch_size, device)
        if context.is_main:
            print(f"{log_dir.name}: bn_stats reestimate: BatchNorm statistics re-estimated on {batches} target "
                  "train batches")
    if context.is_main:
        save_checkpoint(checkpoint_out, state.model, model_spec, state.checkpoint_parts(),
                        description=CheckpointDescription.of_data(data))
    if snapshots is not None:
        snapshots.clear()
    return last
