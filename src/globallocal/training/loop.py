"""The one training loop: supervised (source-only, oracle) and adversarial global + local adaptation.

Every method is the same loop with different alignment terms switched on (ADVENT copies its loop per
method; we do not). One iteration, following ADVENT:

1. G step: source segmentation loss (main + lambda_seg_aux * aux); then, on a target batch, the global
   term of each aligned head and the local term, with the discriminators frozen.
2. D step: every discriminator on detached source and target outputs, each domain's loss halved.

Each head's target softmax and self-information are computed once (``HeadOutputs``) and shared by the
G step, the pseudo-labels and the D step. Mixed precision enters as an autocast context and loss
scalers (``precision.py``); at every ``log_every``-th iteration the loop also measures the gradient
norm that each loss term puts on the output it acts on (``grad_norm/*`` in the logs).

A step returns its statistics as detached 0-dim tensors on the device; the loop adds them up there
(``running_means.py``) and reads them on the host once per ``log_every`` iterations (and before a
snapshot), so a CUDA step is not stalled by a host read per loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from globallocal.alignment.aligners import AlignmentConfig  # noqa: F401  (re-exported with the loop's types)
from globallocal.alignment.representations import HeadOutputs
from globallocal.data.labels import IGNORE_INDEX
from globallocal.data.order import DataStream
from globallocal.errors import Interrupted, UserError
from globallocal.models.segmentation import upsample
from globallocal.training.interrupts import deferred_stop, interrupted
from globallocal.training.precision import autocast, grad_scaler
from globallocal.training.running_means import NonFiniteLoss, RunningMeans
from globallocal.training.snapshots import Snapshots, capture, restore

# Re-exported: a caller of the loop finds its configuration and state types here too.
from globallocal.training.state import HEADS, OptimConfig, TrainConfig, TrainState, build_train_state  # noqa: F401

#: Seconds between progress-bar refreshes (keeps `dvc repro` logs short).
PROGRESS_INTERVAL_S = 2.0


def poly_lr(base_lr: float, iteration: int, max_iters: int, power: float) -> float:
    """Poly decay: ``base_lr * (1 - iteration / max_iters) ** power``."""
    return base_lr * (1 - iteration / max_iters) ** power


def set_poly_lr(optimizer: torch.optim.Optimizer, base_lr: float, iteration: int, optim: OptimConfig) -> float:
    """Set every group's lr to the poly value times its ``lr_mult`` (10 for heads); returns the base value."""
    lr = poly_lr(base_lr, iteration, optim.max_iters, optim.power)
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_mult", 1.0)
    return lr


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for param in module.parameters():
        param.requires_grad_(flag)


def _forward(model: nn.Module, images: torch.Tensor, multi_level: bool, device: torch.device,
             precision: str) -> dict[str, torch.Tensor]:
    """Both heads' logits in float32, upsampled to the input size (every loss sees input-size maps)."""
    with autocast(device, precision):
        aux, main = model(images)
    size = images.shape[-2:]
    out = {"main": upsample(main.float(), size)}
    if multi_level:
        out["aux"] = upsample(aux.float(), size)
    return out


def _to_device(images: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return images.to(device, non_blocking=True, memory_format=memory_format)


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the labelled pixels of (N, K, H, W) logits; 0 (still on the graph) when the batch
    has none, e.g. a GTA5 frame whose label is all void, where the mean over no pixel would be NaN.

    Chosen on the device (``torch.where``), not by an ``if`` that would read the labels on the host. The
    mean over no pixel has a zero gradient (no pixel receives any), so the 0 has one too.
    """
    loss = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)
    return torch.where((labels != IGNORE_INDEX).any(), loss, loss.new_zeros(()))


def gradient_norm(loss: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """L2 norm of d loss / d output over the whole (N, K, H, W) output, a 0-dim tensor on the output's
    device; 0 when the loss is constant.

    Uses ``autograd.grad`` on a retained graph, so nothing accumulates into parameters' ``.grad``.
    """
    if not loss.requires_grad:
        return output.new_zeros((), dtype=torch.float32)
    (grad,) = torch.autograd.grad(loss, output, retain_graph=True, allow_unused=True)
    return output.new_zeros((), dtype=torch.float32) if grad is None else grad.norm().detach()


#: One step's statistics: detached 0-dim tensors on the device (the learning rates: floats).
Stats = dict[str, "torch.Tensor | float"]


def train_step(
    state: TrainState, config: TrainConfig, source: dict, target: dict | None, device: torch.device
) -> Stats:
    """One iteration (G step, then D step); returns the values to log, none of them read on the host."""
    model, aligners = state.model, state.aligners
    scaler = state.scaler or grad_scaler(device, "fp32")
    measure = config.log_grad_norms and (state.iteration + 1) % config.log_every == 0
    log: Stats = {}
    log["lr/generator"] = set_poly_lr(state.optimizer, config.optim.lr, state.iteration, config.optim)
    state.optimizer.zero_grad(set_to_none=True)

    images = _to_device(source["image"], device, config.channels_last)
    labels = source["label"].to(device, non_blocking=True)
    use_statistics(state, "source")
    src = _forward(model, images, config.multi_level, device, config.precision)
    loss_seg = segmentation_loss(src["main"], labels)
    log["loss_seg/main"] = loss_seg.detach()
    if measure:
        log["grad_norm/seg_main"] = gradient_norm(loss_seg, src["main"])
    if config.multi_level and config.lambda_seg_aux > 0:
        loss_aux = segmentation_loss(src["aux"], labels)
        log["loss_seg/aux"] = loss_aux.detach()
        loss_seg = loss_seg + config.lambda_seg_aux * loss_aux
    # Backward now so the source graph is freed before the target forward (ADVENT does the same).
    scaler.scale(loss_seg).backward()

    if target is not None:
        if aligners is not None:
            set_requires_grad(aligners, False)
        target_images = _to_device(target["image"], device, config.channels_last)
        use_statistics(state, "target")
        tgt_logits = _forward(model, target_images, config.multi_level, device, config.precision)
        tgt = {head: HeadOutputs(logits) for head, logits in tgt_logits.items()}
        terms = {}
        with autocast(device, config.precision):
            if aligners is not None:
                align_terms, align_stats = aligners.generator_terms(tgt, state.iteration)
                terms.update(align_terms)
                log.update(align_stats)
            for term in state.target_terms:
                extra_terms, extra_stats = term.generator_terms(target, tgt)
                terms.update(extra_terms)
                log.update(extra_stats)
        if measure:
            for name, loss in terms.items():
                log[f"grad_norm/{name}"] = gradient_norm(loss, tgt[name.rsplit("_", 1)[1]].logits)
        loss_adv = sum(terms.values())
        if isinstance(loss_adv, torch.Tensor) and loss_adv.requires_grad:
            scaler.scale(loss_adv).backward()
        if state.optimizer_d is not None:
            _discriminator_step(state, config, src, labels, tgt, device, log)

    use_statistics(state, "target")  # between steps the model holds the target's statistics (a no-op after a target)
    scaler.step(state.optimizer)
    scaler.update()
    state.iteration += 1
    for term in state.target_terms:
        term.after_step(model, state.iteration)
    return log


def use_statistics(state: TrainState, domain: str) -> None:
    """``bn_stats: domain_specific``: the next forward updates ``domain``'s running statistics."""
    if state.domain_statistics is not None:
        state.domain_statistics.use(domain)


def _discriminator_step(
    state: TrainState, config: TrainConfig, src: dict[str, torch.Tensor], labels: torch.Tensor,
    tgt: dict[str, HeadOutputs], device: torch.device, log: Stats,
) -> None:
    """Every discriminator on detached source and target outputs (the target's softmax is reused)."""
    aligners, scaler_d = state.aligners, state.scaler_d or grad_scaler(device, "fp32")
    set_requires_grad(aligners, True)
    log["lr/discriminator"] = set_poly_lr(state.optimizer_d, config.optim.lr_d, state.iteration, config.optim)
    state.optimizer_d.zero_grad(set_to_none=True)
    src_detached = {head: HeadOutputs(logits.detach()) for head, logits in src.items()}
    tgt_detached = {head: outputs.detach() for head, outputs in tgt.items()}
    with autocast(device, config.precision):
        loss_d, d_stats = aligners.discriminator_loss(src_detached, labels, tgt_detached, state.iteration)
    log.update(d_stats)
    if loss_d is not None:
        scaler_d.scale(loss_d).backward()
        scaler_d.step(state.optimizer_d)
        scaler_d.update()


def stop_on_non_finite(bad: NonFiniteLoss | None, snapshots: Snapshots | None) -> None:
    """Stop with a one-line error naming the iteration and the term when a loss was NaN or infinite."""
    if bad is None:
        return
    newest = snapshots.existing() if snapshots is not None else []
    kept = f"; the last good snapshot {newest[0]} is kept" if newest else ""
    raise UserError(
        f"training stopped at iteration {bad.iteration}: loss term '{bad.key}' is {bad.value} (a learning "
        f"rate too high for this setting, or a bad input){kept}"
    )


def save_snapshot(snapshots: Snapshots, state: TrainState, streams: dict, running: RunningMeans,
                  last: dict[str, float]) -> str:
    """Write a snapshot of the run at ``state.iteration`` (never of a state a non-finite loss touched)."""
    sums, counts, bad = running.read()
    stop_on_non_finite(bad, snapshots)
    logged = {"sums": sums, "counts": counts, "last": last}
    return str(snapshots.save(state.iteration, capture(state, streams, logged)))


def stop_here(run: RunOptions, signum: int, state: TrainState, streams: dict, running: RunningMeans,
              last: dict[str, float], total: int) -> Interrupted:
    """A stop asked by a signal: the snapshot of this iteration (unless one was just written) and the line."""
    snapshot = None
    if run.snapshots is not None:
        newest = run.snapshots.existing()
        just_written = newest and newest[0].name == run.snapshots.folder_name(state.iteration)
        snapshot = str(newest[0]) if just_written else save_snapshot(run.snapshots, state, streams, running, last)
    return interrupted(run.description, signum, state.iteration, total, snapshot)


@dataclass(frozen=True)
class RunOptions:
    """How one run of the loop reports and persists, apart from what it computes.

    ``live``: a dvclive ``Live`` (or None) receiving the interval means; ``progress``: show a progress bar
    titled ``description``; ``snapshots``: receives a snapshot when due (or None); ``resume``: a snapshot's
    payload to continue from (or None).
    """

    live: object | None = None
    progress: bool = True
    description: str = "train"
    snapshots: Snapshots | None = None
    resume: dict | None = None


def train(
    state: TrainState,
    config: TrainConfig,
    source_loader: DataLoader,
    target_loader: DataLoader | None,
    device: torch.device,
    run: RunOptions = RunOptions(),
) -> dict[str, float]:
    """Run from ``state.iteration`` to ``config.optim.iterations``; log means every ``log_every`` steps.

    Returns the means of the last logging interval. The statistics are read on the host only at a log
    step or before a snapshot, which is also when a non-finite loss is caught (naming the iteration
    where it happened; no snapshot is written after it). SIGINT / SIGTERM stop the run after the current
    iteration with a snapshot there and ``Interrupted`` (globallocal.training.interrupts).
    """
    state.model.train()
    if state.aligners is not None:
        state.aligners.train()
    sources = DataStream(source_loader)
    targets = DataStream(target_loader) if target_loader is not None else None
    streams = {"source": sources, "target": targets}
    running = RunningMeans()
    last: dict[str, float] = {}
    if run.resume is not None:
        logged = restore(run.resume, state, streams)
        running.load(logged["sums"], logged["counts"])
        last.update(logged["last"])
    total = config.optim.iterations
    bar = tqdm(
        total=total, initial=state.iteration, desc=run.description, disable=not run.progress, dynamic_ncols=True,
        mininterval=PROGRESS_INTERVAL_S,
    )
    with deferred_stop(enabled=not torch.distributed.is_initialized()) as stop:
        while state.iteration < total:
            stats = train_step(state, config, next(sources), next(targets) if targets else None, device)
            running.add(stats, state.iteration)
            if state.iteration % config.log_every == 0 or state.iteration == total:
                sums, counts, bad = running.read()
                stop_on_non_finite(bad, run.snapshots)
                last = {key: sums[key] / counts[key] for key in sums}
                if run.live is not None:
                    run.live.step = state.iteration  # x axis = training iteration, not the log-interval count
                    for key, value in last.items():
                        run.live.log_metric(key, value)
                    run.live.next_step()
                bar.set_postfix({k: f"{v:.3g}" for k, v in last.items() if k.startswith("loss")}, refresh=False)
                running.clear()
            if run.snapshots is not None and run.snapshots.due(state.iteration):
                save_snapshot(run.snapshots, state, streams, running, last)
            bar.update(1)
            if stop.requested and state.iteration < total:
                bar.close()
                raise stop_here(run, stop.signum, state, streams, running, last, total)
    bar.close()
    return last
