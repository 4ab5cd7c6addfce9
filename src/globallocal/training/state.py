"""What a training run is configured with (``TrainConfig``) and what changes while it runs (``TrainState``).

Kept apart from the loop (``loop.py``) so that snapshots, checkpoints and the configuration can
name these types without importing the loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from globallocal.alignment.aligners import Aligners, AlignmentConfig
from globallocal.models.normalization import DomainStatistics, batchnorm_layers
from globallocal.training.acceleration import configure_backends, maybe_compile, optimizer_options
from globallocal.training.precision import grad_scaler

HEADS = ("main", "aux")


@dataclass(frozen=True)
class OptimConfig:
    """SGD for the segmentation network, Adam for the discriminators, both with poly decay.

    ``iterations`` is where training stops (ADVENT's early stop); ``max_iters`` the poly horizon.
    """

    iterations: int
    max_iters: int
    lr: float
    momentum: float
    weight_decay: float
    power: float
    lr_d: float
    betas_d: tuple[float, float]


@dataclass(frozen=True)
class TrainConfig:
    """A training stage's configuration; no defaults: params.yaml is the one source (``globallocal.config``)."""

    optim: OptimConfig
    lambda_seg_aux: float
    multi_level: bool
    alignment: AlignmentConfig | None
    log_every: int
    precision: str
    channels_last: bool
    #: Measure each loss term's gradient norm on its head's output at logging iterations.
    log_grad_norms: bool
    #: CUDA only (acceleration.py): cuDNN autotuning, fused optimiser steps; compile: any device, opt-in.
    cudnn_benchmark: bool
    fused_optimizer: bool
    compile: bool
    #: The running BatchNorm statistics the trained model keeps: mixed | domain_specific | reestimate
    #: (models/normalization.py); anything but mixed only where target batches are forwarded.
    bn_stats: str


@dataclass
class TrainState:
    """Everything that changes during training; saved as a plain dict in checkpoints."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    aligners: Aligners | None = None
    optimizer_d: torch.optim.Optimizer | None = None
    iteration: int = 0
    scaler: torch.amp.GradScaler | None = None
    scaler_d: torch.amp.GradScaler | None = None
    #: Extra losses on the target batch beside the alignment terms (self-training's pseudo-label term):
    #: objects with ``generator_terms(batch, target_outputs) -> ({name_<head>: loss}, {stat: 0-dim tensor})`` and
    #: ``after_step(model, iteration)`` (e.g. an EMA teacher's update). Not saved in checkpoints.
    target_terms: list = field(default_factory=list)
    #: ``bn_stats: domain_specific``: the source's running statistics, swapped in for source forwards.
    domain_statistics: DomainStatistics | None = None

    def checkpoint_parts(self) -> dict:
        """What a final checkpoint keeps of the training beside the weights (``save_checkpoint``)."""
        parts = {"optimizer": self.optimizer.state_dict(), "iteration": self.iteration}
        if self.aligners is not None:
            parts["discriminators"] = self.aligners.state_dict()
        if self.optimizer_d is not None:
            parts["optimizer_d"] = self.optimizer_d.state_dict()
        return parts


def build_train_state(model: nn.Module, config: TrainConfig, num_classes: int) -> TrainState:
    optim = config.optim
    device = next(model.parameters()).device
    configure_backends(device, config.cudnn_benchmark)
    speed = optimizer_options(device, config.fused_optimizer)
    optimizer = torch.optim.SGD(
        model.param_groups(optim.lr), lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay,
        **speed,
    )
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    maybe_compile(model, config.compile)
    state = TrainState(model=model, optimizer=optimizer, scaler=grad_scaler(device, config.precision))
    if config.bn_stats == "domain_specific" and batchnorm_layers(model):
        state.domain_statistics = DomainStatistics(model)
    if config.alignment is not None:
        heads = HEADS if config.multi_level else ("main",)
        aligners = Aligners(config.alignment, num_classes, heads).to(device, memory_format=memory_format)
        state.aligners = aligners
        d_groups = aligners.discriminator_param_groups(optim.lr_d)
        if d_groups:
            state.optimizer_d = torch.optim.Adam(d_groups, lr=optim.lr_d, betas=optim.betas_d, **speed)
            state.scaler_d = grad_scaler(device, config.precision)
    return state
