"""Data-parallel training over several processes (GPUs, or CPU ranks), launched with torchrun.

One process per GPU (``nccl``) or per CPU rank (``gloo``). Every rank runs the unchanged training loop on
its share of each domain's batch (``train.batch_size`` stays the images per domain per iteration, *in
total*); the seeded global batch order is the single-process one, split into contiguous slices by rank.

Gradient synchronisation is an explicit all-reduce (mean over ranks) of every parameter's gradient in
an optimizer step pre-hook, on the generator's SGD and the discriminators' Adam alike, instead of
wrapping the models in ``DistributedDataParallel``. Why: one iteration runs up to three backward passes
(source segmentation, target adversarial — absent in source-only runs, or without a graph when no term
is active — and the discriminators on detached outputs). DDP's reducer expects one backward per
forward and hangs when a rank leaves a parameter unused (the aux head when ``multi_level`` is false, a
local term that starts later); the hook runs once per ``step()``, after every backward, on every rank,
whatever the loop did. The cost is no overlap of communication with the backward pass. The models stay
unwrapped, so checkpoints, ``param_groups`` and ``input_normalization`` are untouched. Every rank must
call ``step()`` equally often: an fp16 ``GradScaler`` that skips a step on one rank only (an inf in
that rank's gradients) would leave the others waiting, so with one call ``average_gradients`` before
``scaler.step`` (bf16 autocast needs no scaler).

What a step means with N ranks:

* Per-rank losses are means over the rank's own batch, and gradients are averaged. For the
  segmentation CE (a mean over valid pixels) and the global terms (means over equal-sized maps) this is
  the gradient of the union batch when every rank has as many valid pixels (exactly so for the global
  terms); with ignore pixels it weights each rank's pixels by 1 / (N * its count), as DDP does.
* The class-balanced local loss is not decomposable over ranks: each rank balances the categories of
  its own batch, and the gradients are averaged.
* BatchNorm (when learned) normalises with each rank's batch statistics, as DDP without SyncBatchNorm;
  ``average_batchnorm_statistics`` averages the running statistics before the checkpoint is written.
* Rank r is seeded with ``seed + r`` (rank 0 = the single-process seed); rank 0's initial weights are
  broadcast, so every rank starts from the same model.
* Only rank 0 logs (dvclive, progress bar) and writes checkpoints; its logged losses are those of its
  own share of the batch.
"""

from __future__ import annotations

import atexit
import os
import sys
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset

from globallocal.data.loading import DeviceLoader, train_loader
from globallocal.errors import UserError

#: Environment variables torchrun sets for every worker process.
TORCHRUN_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE")
#: A rank that waits this long for the others (a crashed peer) fails instead of hanging forever.
COLLECTIVE_TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class LaunchConfig:
    """How many processes a training stage runs as: ``nproc_per_node`` on each of ``nnodes`` machines.

    ``rdzv_endpoint`` (``host:port``) is where the nodes meet when ``nnodes > 1``; one node runs alone
    with ``torchrun --standalone`` (a free port, so runs side by side do not collide).
    """

    nproc_per_node: int
    nnodes: int
    rdzv_endpoint: str

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes


def under_torchrun() -> bool:
    return all(name in os.environ for name in TORCHRUN_ENV)


def torchrun_command(launch: LaunchConfig, argv: list[str]) -> list[str]:
    """The command that re-runs ``argv`` (a script and its arguments) as ``launch`` asks, via torchrun."""
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={launch.nproc_per_node}"]
    if launch.nnodes == 1:
        command.append("--standalone")
    else:
        # Static rendezvous: each node's rank comes from PET_NODE_RANK (0 on the node that writes outputs).
        host, port = launch.rdzv_endpoint.rsplit(":", 1)
        command += [f"--nnodes={launch.nnodes}", f"--master_addr={host}", f"--master_port={port}"]
    return command + list(argv)


def relaunch_under_torchrun(launch: LaunchConfig) -> None:
    """Replace this process by torchrun running the same script, when more than one process is asked.

    Returns (doing nothing) for a single process or inside a process that torchrun started, so a DVC
    stage command stays ``python pipeline/<stage>.py`` whatever ``train.nproc_per_node`` says.
    """
    if launch.world_size == 1 or under_torchrun():
        return
    command = torchrun_command(launch, sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands among the ranks, and the few things that differ by rank."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs and writes files."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def rank_seed(self, seed: int) -> int:
        """Rank 0 keeps ``seed`` (a one-process run is unchanged); the others get their own stream."""
        return seed + self.rank

    def loader(self, dataset: Dataset, batch_size: int, seed: int, num_workers: int):
        """This rank's slice of every seeded global batch of ``batch_size``, delivered on this rank's device.

        Wrapped in ``DeviceLoader`` on every device (on the CPU a no-op), so the CUDA path is the one the
        CPU tests run; on CUDA the batches are pinned and copied ahead.
        """
        loader = train_loader(
            dataset, batch_size, seed, num_workers, pin_memory=self.device.type == "cuda", rank=self.rank,
            world_size=self.world_size,
        )
        return DeviceLoader(loader, self.device)

    def distribute(self, state) -> None:
        """Make a ``TrainState`` data-parallel: same initial weights everywhere, gradients averaged at each step."""
        if not self.is_distributed:
            return
        broadcast_from_main(state.model)
        if state.aligners is not None:
            broadcast_from_main(state.aligners)
        for optimizer in (state.optimizer, state.optimizer_d):
            if optimizer is not None:
                optimizer.register_step_pre_hook(_average_gradients_hook)

    def finish(self, model: nn.Module) -> None:
        """Before rank 0 writes the checkpoint: running BatchNorm statistics averaged over ranks."""
        if self.is_distributed:
            average_batchnorm_statistics(model)


def start(launch: LaunchConfig, device: torch.device) -> DistributedContext:
    """The context of this process; joins the process group when torchrun started several.

    ``nccl`` on CUDA (each rank on ``cuda:LOCAL_RANK``), ``gloo`` on the CPU. The group is torn down at exit.
    """
    if not under_torchrun():
        return DistributedContext(device=device)
    world_size = int(os.environ["WORLD_SIZE"])
    if world_size != launch.world_size:
        raise UserError(
            f"torchrun started {world_size} processes but params say train.nproc_per_node x train.nnodes = "
            f"{launch.world_size}: set those keys (the stage launches torchrun itself)"
        )
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise UserError(
                f"train.nproc_per_node asks for {launch.nproc_per_node} processes per machine but only "
                f"{torch.cuda.device_count()} CUDA devices are visible: one process per GPU"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=COLLECTIVE_TIMEOUT)
        atexit.register(stop)
    return DistributedContext(
        rank=int(os.environ["RANK"]),
        world_size=world_size,
        local_rank=local_rank,
        local_world_size=int(os.environ["LOCAL_WORLD_SIZE"]),
        device=device,
    )


def stop() -> None:
    """Leave the process group (idempotent)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def broadcast_from_main(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers into every rank's ``module``."""
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def average_gradients(params: list[torch.Tensor]) -> None:
    """Replace each gradient by its mean over ranks; a gradient no rank has stays ``None``.

    A rank that left a parameter unused (``grad is None``) while another used it takes part with zeros,
    so every rank sees the same average and the optimizers stay in step.
    """
    if not params:
        return
    world_size = dist.get_world_size()
    # On the parameters' device: nccl reduces CUDA tensors only.
    has_grad = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=params[0].device)
    dist.all_reduce(has_grad)
    used = [p for p, flag in zip(params, has_grad.tolist()) if flag > 0]
    for p in used:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    for bucket in _buckets(used):
        flat = torch.cat([p.grad.reshape(-1) for p in bucket])
        dist.all_reduce(flat)
        flat /= world_size
        offset = 0
        for p in bucket:
            p.grad.copy_(flat[offset:offset + p.numel()].view_as(p.grad))
            offset += p.numel()


def _buckets(params: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """Parameters grouped by (device, dtype): one all-reduce each."""
    groups: dict[tuple, list[torch.Tensor]] = {}
    for p in params:
        groups.setdefault((p.grad.device, p.grad.dtype), []).append(p)
    return list(groups.values())


def _average_gradients_hook(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
    average_gradients([p for group in optimizer.param_groups for p in group["params"]])


def average_batchnorm_statistics(model: nn.Module) -> None:
    """Average every learned BatchNorm's running mean and variance over ranks (as timm's distribute_bn)."""
    world_size = dist.get_world_size()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
                for buffer in (module.running_mean, module.running_var):
                    dist.all_reduce(buffer)
                    buffer /= world_size
