"""The sections of params.yaml, one frozen dataclass each: every field declares beside it what a valid
value is (a choice, a bound, an integer, a path, ...: ``globallocal.config.values``).

``globallocal.config.Params`` gathers these sections into the whole tree and builds the library's
configurations from them; ``globallocal.config.reading`` walks params.yaml against them. No field has a
default: params.yaml is the one source of defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from globallocal.alignment.gan_losses import GAN_LOSSES
from globallocal.alignment.global_alignment import GLOBAL_FAMILIES
from globallocal.alignment.local import CONF_FILTERS
from globallocal.alignment.representations import REPRESENTATIONS
from globallocal.config.values import (
    adam_betas,
    choice,
    class_names,
    endpoint,
    flag,
    fraction,
    integer,
    number,
    path,
    size,
    threads,
)
from globallocal.data.synthetic import SHIFT_SEVERITIES, SHIFTS
from globallocal.errors import UserError
from globallocal.models.efficientnet_weights import PACKAGED_WEIGHTS
from globallocal.models.normalization import BN_PROTOCOLS, BN_STATS, NORMS
from globallocal.training.precision import PRECISIONS
from globallocal.training.selftraining import STARTS, TEACHERS, THRESHOLD_RULES

SOURCE_DATASETS = ("gta5", "synthia")
MODEL_ARCHS = ("mobilenetv3_large", "mobilenetv3_small", "deeplabv2_resnet101", "efficientnet_lite0")
OUTPUT_STRIDES = (8, 16)


@dataclass(frozen=True)
class DataSection:
    source: str = choice(*SOURCE_DATASETS)
    source_root: Path = path()
    target_root: Path = path()
    lists_dir: Path = path()
    source_size: tuple[int, int] = size()
    target_size: tuple[int, int] = size()
    #: [width, height] every training image (both domains, labels with them) is randomly cropped to, from its
    #: resized size, in every training stage; None = no crop (docs/fair_game.md). Evaluation keeps full images.
    train_crop: tuple[int, int] | None = size(nullable=True)


@dataclass(frozen=True)
class PrepareSection:
    generate: bool = flag()
    out_dir: Path = path()
    seed: int = integer()
    num_source: int = integer(minimum=1)
    num_target_train: int = integer(minimum=1)
    num_target_val: int = integer(minimum=1)
    source_size: tuple[int, int] = size()
    target_size: tuple[int, int] = size()
    #: Target-only shift of the benchmark (docs/shift_grid.md) and its severity (ignored by none).
    shift: str = choice(*SHIFTS)
    shift_severity: int = integer(minimum=1, allowed=SHIFT_SEVERITIES)
    #: Labelled target dev images carved out of target train (never adapted on, never val), and their draw.
    dev_size: int = integer(minimum=1)
    dev_seed: int = integer()


@dataclass(frozen=True)
class ModelSection:
    arch: str = choice(*MODEL_ARCHS)
    backbone_weights: Path | None = path(nullable=True)
    #: What training may change in BatchNorm: learned | reference | frozen (models/normalization.py).
    bn_protocol: str = choice(*BN_PROTOCOLS)
    output_stride: int = integer(allowed=OUTPUT_STRIDES)
    #: batch | group (GroupNorm control, MobileNetV3 only).
    norm: str = choice(*NORMS)
    #: Running-statistics momentum of learned BatchNorm; None = the architecture's own.
    bn_momentum: float | None = fraction(open_at_zero=True, nullable=True)

    def spec(self, num_classes: int) -> dict:
        """Keyword arguments of ``build_model`` (stored in checkpoints, so plain types only)."""
        return {
            "arch": self.arch,
            "num_classes": num_classes,
            "backbone_weights": str(self.backbone_weights) if self.backbone_weights else None,
            "bn_protocol": self.bn_protocol,
            "output_stride": self.output_stride,
            "bn_momentum": self.bn_momentum,
            "norm": self.norm,
        }

    def check_norm(self) -> None:
        """``model.norm: group`` only on MobileNetV3, and only with bn_protocol learned (nothing else applies)."""
        if self.norm != "group":
            return
        if not self.arch.startswith("mobilenetv3"):
            raise UserError("params key 'model.norm' is group, which needs a mobilenetv3 arch (model.arch)")
        if self.bn_protocol != "learned":
            raise UserError("params key 'model.norm' is group: GroupNorm has no statistics, "
                            "set model.bn_protocol: learned")

    def check_backbone_weights(self) -> None:
        """``model.backbone_weights: imagenet`` names efficientnet_lite0's packaged weights, no other arch's."""
        if str(self.backbone_weights) == PACKAGED_WEIGHTS and self.arch != "efficientnet_lite0":
            raise UserError(
                f"params key 'model.backbone_weights' is {PACKAGED_WEIGHTS}, the packaged weights of "
                f"efficientnet_lite0, but model.arch is {self.arch}: give a local weights file, or null"
            )


@dataclass(frozen=True)
class TrainSection:
    """The ``train`` section: shared by pretrain, adapt and oracle."""

    batch_size: int = integer(minimum=1)
    momentum: float = fraction()
    weight_decay: float = number()
    power: float = number()
    lr_d: float = number(strict=True)
    betas_d: tuple[float, float] = adam_betas()
    lambda_seg_aux: float = number()
    multi_level: bool = flag()
    log_every: int = integer(minimum=1)
    log_grad_norms: bool = flag()
    precision: str = choice(*PRECISIONS)
    channels_last: bool = flag()
    #: CUDA only (acceleration.py): cuDNN autotuning, fused optimiser steps; compile: any device, opt-in.
    cudnn_benchmark: bool = flag()
    fused_optimizer: bool = flag()
    compile: bool = flag()
    nproc_per_node: int = integer(minimum=1)
    nnodes: int = integer(minimum=1)
    rdzv_endpoint: str = endpoint()
    snapshot_every: int = integer()
    keep_snapshots: int = integer(minimum=1)
    cpu_threads: int | str = threads()


@dataclass(frozen=True)
class ScheduleSection:
    """A training stage's schedule: ``iterations`` is where it stops, ``max_iters`` the poly horizon."""

    iterations: int = integer(minimum=1)
    max_iters: int = integer(minimum=1)
    lr: float = number(strict=True)


@dataclass(frozen=True)
class AdaptSection(ScheduleSection):
    global_family: str = choice(*GLOBAL_FAMILIES)
    gan_loss: str = choice(*GAN_LOSSES)
    global_d_width: int = integer(minimum=1)
    global_d_pool: int = integer(minimum=1)
    lambda_adv_main: float = number()
    lambda_adv_aux: float = number()
    lambda_ent_main: float = number()
    lambda_ent_aux: float = number()
    lambda_adv_local: float = number()
    lambda_adv_local_aux: float = number()
    global_warmup_iters: int = integer()
    local_start_iter: int = integer()
    local_warmup_iters: int = integer()
    lr_d_local: float | None = number(strict=True, nullable=True)
    local_representation: str = choice("auto", *REPRESENTATIONS)
    local_window: int = integer(minimum=1)
    local_min_purity: float = fraction()
    local_conf_threshold: float = fraction()
    local_conf_filter: str = choice(*CONF_FILTERS)
    local_context: int = integer(minimum=1, odd=True)
    #: Train ids of the classes named in params.yaml.
    local_background_classes: tuple[int, ...] = class_names()
    #: The BatchNorm running statistics the adapted model keeps: mixed | domain_specific | reestimate
    #: (models/normalization.py, docs/fair_game.md).
    bn_stats: str = choice(*BN_STATS)


@dataclass(frozen=True)
class SelfTrainSection:
    """The ``selftrain`` section: where self-training starts, its schedule and its method."""

    start: str = choice(*STARTS)
    #: 0 = the stage copies its start model (the pipeline without self-training).
    iterations: int = integer(minimum=0)
    max_iters: int = integer(minimum=1)
    lr: float = number(strict=True)
    lambda_pseudo: float = number()
    threshold_rule: str = choice(*THRESHOLD_RULES)
    top_p: float = fraction()
    rounds: int = integer(minimum=1)
    teacher: str = choice(*TEACHERS)
    ema_momentum: float = fraction()
    ema_conf_threshold: float = fraction()
    #: The BatchNorm running statistics the self-trained model (and its control) keeps, as adapt.bn_stats.
    bn_stats: str = choice(*BN_STATS)


@dataclass(frozen=True)
class AdabnSection:
    #: Target images per batch when AdaBN re-estimates BatchNorm statistics (batches weigh equally).
    batch_size: int = integer(minimum=1)


@dataclass(frozen=True)
class EvaluateSection:
    num_qualitative: int = integer()
    #: The domain probe (evaluation/probe.py): Adam steps, maps per domain per step, D_g width, lr.
    probe_steps: int = integer(minimum=1)
    probe_batch_size: int = integer(minimum=1)
    probe_width: int = integer(minimum=1)
    probe_lr: float = number(strict=True)

