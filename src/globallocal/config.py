"""params.yaml -> one typed, frozen, validated tree (``Params``). The only place that knows the params layout.

Each section of params.yaml is a frozen dataclass below, and each of its fields declares beside it what
a valid value is (a choice, a bound, an integer, a path, ...: ``globallocal.param_values``). ``parse`` walks params.yaml once against
these classes: a key that no class declares is unknown by construction and refused, naming the closest
known one (a typo such as ``adapt.lamda_adv_local`` must not silently train with something else); a key
a class declares but params.yaml lacks is missing; every value is checked with a message naming its key
and the allowed values; numbers must be finite. Then the checks that span keys run (poly horizon, D_g's
input size, the benchmark's roots). The library below takes the typed configurations the tree builds
(``Params.train_config`` ...) and trusts them. There are no defaults here: params.yaml is the one source.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from globallocal.alignment.aligners import AlignmentConfig
from globallocal.alignment.discriminators import GLOBAL_MIN_INPUT
from globallocal.alignment.gan_losses import GAN_LOSSES
from globallocal.alignment.global_alignment import GLOBAL_FAMILIES, family_representation
from globallocal.alignment.local import CONF_FILTERS, LocalAlignmentConfig
from globallocal.alignment.representations import REPRESENTATIONS
from globallocal.data.synthetic import SOURCE_DIR as SYNTHETIC_SOURCE_DIR
from globallocal.data.synthetic import TARGET_DIR as SYNTHETIC_TARGET_DIR
from globallocal.data.synthetic import SHIFT_SEVERITIES, SHIFTS, SyntheticConfig
from globallocal.distributed import LaunchConfig
from globallocal.errors import UserError
from globallocal.models.normalization import BN_PROTOCOLS, NORMS
from globallocal.param_values import (
    adam_betas,
    choice,
    class_names,
    device,
    endpoint,
    flag,
    fraction,
    integer,
    number,
    path,
    section,
    size,
    workers,
)
from globallocal.precision import PRECISIONS
from globallocal.selftraining import STARTS, TEACHERS, THRESHOLD_RULES, SelfTrainingConfig
from globallocal.snapshots import SnapshotConfig
from globallocal.train_state import OptimConfig, TrainConfig

SOURCE_DATASETS = ("gta5", "synthia")
MODEL_ARCHS = ("mobilenetv3_large", "mobilenetv3_small", "deeplabv2_resnet101")
OUTPUT_STRIDES = (8, 16)
TRAINING_STAGES = ("pretrain", "adapt", "oracle", "selftrain")

#: Keys that were renamed: writing the old one gets the translation instead of "not a known key".
RENAMED_KEYS = {
    "model.freeze_bn": (
        "params key 'model.freeze_bn' was replaced by 'model.bn_protocol': write bn_protocol: frozen "
        "for freeze_bn: true, learned for false (reference: affine frozen, statistics updated, as ADVENT)"
    ),
}


def load_params(path: Path = Path("params.yaml")) -> dict:
    """Read params.yaml as plain YAML; a missing file or broken YAML is a UserError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found: run from the repository root, where params.yaml lives")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise UserError(f"{path} is not valid YAML ({where}{problem})") from error
    if not isinstance(params, dict):
        raise UserError(f"{path} must hold a mapping of sections (data, model, train, ...)")
    return params


# ---- the sections ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class DataConfig:
    source: str = choice(*SOURCE_DATASETS)
    source_root: Path = path()
    target_root: Path = path()
    lists_dir: Path = path()
    source_size: tuple[int, int] = size()
    target_size: tuple[int, int] = size()


@dataclass(frozen=True)
class PrepareConfig:
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
class ModelConfig:
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
        if self.arch == "deeplabv2_resnet101":
            raise UserError("params key 'model.norm' is group, which needs a mobilenetv3 arch (model.arch)")
        if self.bn_protocol != "learned":
            raise UserError("params key 'model.norm' is group: GroupNorm has no statistics, set model.bn_protocol: learned")


@dataclass(frozen=True)
class SharedTrainConfig:
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


@dataclass(frozen=True)
class ScheduleConfig:
    """A training stage's schedule: ``iterations`` is where it stops, ``max_iters`` the poly horizon."""

    iterations: int = integer(minimum=1)
    max_iters: int = integer(minimum=1)
    lr: float = number(strict=True)


@dataclass(frozen=True)
class AdaptConfig(ScheduleConfig):
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


@dataclass(frozen=True)
class AdabnConfig:
    #: Target images per batch when AdaBN re-estimates BatchNorm statistics (batches weigh equally).
    batch_size: int = integer(minimum=1)


@dataclass(frozen=True)
class EvaluateConfig:
    num_qualitative: int = integer()


@dataclass(frozen=True)
class Params:
    """The whole of params.yaml, typed. Build it with ``parse`` or ``load_validated_params``."""

    seed: int = integer()
    device: str = device()
    num_workers: int | str = workers()
    data: DataConfig = section(DataConfig)
    prepare: PrepareConfig = section(PrepareConfig)
    model: ModelConfig = section(ModelConfig)
    train: SharedTrainConfig = section(SharedTrainConfig)
    pretrain: ScheduleConfig = section(ScheduleConfig)
    adapt: AdaptConfig = section(AdaptConfig)
    selftrain: SelfTrainSection = section(SelfTrainSection)
    oracle: ScheduleConfig = section(ScheduleConfig)
    adabn: AdabnConfig = section(AdabnConfig)
    evaluate: EvaluateConfig = section(EvaluateConfig)

    # ---- the library's configurations, built from the tree ----

    def launch_config(self) -> LaunchConfig:
        """How many processes train (torchrun); the global batch must split evenly over them."""
        train = self.train
        launch = LaunchConfig(nproc_per_node=train.nproc_per_node, nnodes=train.nnodes,
                              rdzv_endpoint=train.rdzv_endpoint)
        if train.batch_size % launch.world_size:
            raise UserError(
                f"params key 'train.batch_size' is {train.batch_size}; it must be a multiple of the "
                f"{launch.world_size} processes (train.nproc_per_node x train.nnodes) that share each batch"
            )
        return launch

    def optim_config(self, stage: str) -> OptimConfig:
        """The optimisation schedule of a training stage (pretrain, adapt, oracle or selftrain)."""
        schedule = getattr(self, stage)
        if schedule.max_iters < schedule.iterations:
            raise UserError(
                f"params key '{stage}.max_iters' is {schedule.max_iters}; the poly horizon must be >= "
                f"'{stage}.iterations' ({schedule.iterations})"
            )
        train = self.train
        return OptimConfig(
            iterations=schedule.iterations, max_iters=schedule.max_iters, lr=schedule.lr,
            momentum=train.momentum, weight_decay=train.weight_decay, power=train.power,
            lr_d=train.lr_d, betas_d=train.betas_d,
        )

    def alignment_config(self) -> AlignmentConfig:
        """The adapt stage's alignment terms (``local_representation: auto`` follows the global family)."""
        a = self.adapt
        representation = a.local_representation
        if representation == "auto":
            representation = family_representation(a.global_family)
        local = LocalAlignmentConfig(
            representation=representation, window=a.local_window, min_purity=a.local_min_purity,
            conf_threshold=a.local_conf_threshold, background_classes=a.local_background_classes,
            gan_loss=a.gan_loss, conf_filter=a.local_conf_filter, context=a.local_context,
        )
        return AlignmentConfig(
            global_family=a.global_family, gan_loss=a.gan_loss, global_d_width=a.global_d_width,
            global_d_pool=a.global_d_pool, lambda_adv_main=a.lambda_adv_main, lambda_adv_aux=a.lambda_adv_aux,
            lambda_ent_main=a.lambda_ent_main, lambda_ent_aux=a.lambda_ent_aux,
            lambda_adv_local=a.lambda_adv_local, lambda_adv_local_aux=a.lambda_adv_local_aux,
            local_start_iter=a.local_start_iter, local_warmup_iters=a.local_warmup_iters,
            lr_d_local=a.lr_d_local, local=local,
        )

    def train_config(self, stage: str, aligned: bool) -> TrainConfig:
        """The full configuration of a training stage; ``aligned`` switches the adapt terms on (for
        ``selftrain``: the target stream, without alignment terms)."""
        train = self.train
        alignment = None
        if aligned:
            alignment = self.alignment_config()
            if stage == "selftrain":
                # Target batches are forwarded in training mode with no alignment term: the target term is
                # the pseudo-label loss (selftraining.SelfTraining attaches it; its control has none).
                alignment = dataclasses.replace(alignment, global_family="none", lambda_adv_local=0.0,
                                                lambda_adv_local_aux=0.0)
        return TrainConfig(
            optim=self.optim_config(stage), lambda_seg_aux=train.lambda_seg_aux, multi_level=train.multi_level,
            alignment=alignment, log_every=train.log_every,
            precision=train.precision, channels_last=train.channels_last, log_grad_norms=train.log_grad_norms,
            cudnn_benchmark=train.cudnn_benchmark, fused_optimizer=train.fused_optimizer, compile=train.compile,
        )

    def selftrain_config(self) -> SelfTrainingConfig:
        """The selftrain stage's method (its schedule is ``optim_config("selftrain")``)."""
        st = self.selftrain
        if st.teacher == "ema" and st.rounds != 1:
            raise UserError(f"params key 'selftrain.rounds' is {st.rounds} but 'selftrain.teacher' is ema, which "
                            "labels every batch online: set rounds to 1 (rounds re-label offline, teacher none)")
        return SelfTrainingConfig(
            lambda_pseudo=st.lambda_pseudo, threshold_rule=st.threshold_rule, top_p=st.top_p, rounds=st.rounds,
            teacher=st.teacher, ema_momentum=st.ema_momentum, ema_conf_threshold=st.ema_conf_threshold,
        )

    def snapshot_config(self) -> SnapshotConfig:
        """How often training stages snapshot (``train.snapshot_every``, 0 = never) and how many they keep."""
        return SnapshotConfig(every=self.train.snapshot_every, keep=self.train.keep_snapshots)

    def synthetic_config(self) -> SyntheticConfig | None:
        """The embedded benchmark to generate, or None when ``prepare.generate`` is false (real datasets).

        Generating requires the data roots to be the benchmark's own folders, so that nothing the user
        pointed at (a real dataset) is ever overwritten.
        """
        prepare, data = self.prepare, self.data
        if not prepare.generate:
            return None
        for key, root, expected in (
            ("data.source_root", data.source_root, prepare.out_dir / SYNTHETIC_SOURCE_DIR),
            ("data.target_root", data.target_root, prepare.out_dir / SYNTHETIC_TARGET_DIR),
        ):
            if root != expected:
                raise UserError(
                    f"params key '{key}' is '{root}' but prepare.generate is true and writes the benchmark to "
                    f"'{expected}': point {key} there, or set prepare.generate to false to use a real dataset"
                )
        if data.source != "gta5":
            raise UserError("params key 'data.source' must be 'gta5' when prepare.generate is true "
                            "(the embedded benchmark is written in the GTA5 layout)")
        return SyntheticConfig(
            seed=prepare.seed, num_source=prepare.num_source, num_target_train=prepare.num_target_train,
            num_target_val=prepare.num_target_val, source_size=prepare.source_size,
            target_size=prepare.target_size, shift=prepare.shift, shift_severity=prepare.shift_severity,
        )

    def check_global_discriminator_fits(self) -> None:
        """D_g must see a map of at least GLOBAL_MIN_INPUT x GLOBAL_MIN_INPUT positions in both domains."""
        if self.adapt.global_family not in ("advent", "adaptsegnet"):
            return
        pool = self.adapt.global_d_pool
        for key, (width, height) in (("data.source_size", self.data.source_size),
                                     ("data.target_size", self.data.target_size)):
            seen = (math.ceil(width / pool), math.ceil(height / pool))
            if min(seen) < GLOBAL_MIN_INPUT:
                raise UserError(
                    f"params keys '{key}' ({width}x{height}) and 'adapt.global_d_pool' ({pool}): D_g would see "
                    f"a {seen[0]}x{seen[1]} map, but its five stride-2 convolutions need at least "
                    f"{GLOBAL_MIN_INPUT}x{GLOBAL_MIN_INPUT}; lower adapt.global_d_pool or raise {key}"
                )


# ---- parsing -------------------------------------------------------------------------------------

def known_keys(cls: type = Params, prefix: str = "") -> list[str]:
    """Every key path the tree declares, sections included (``adapt``, ``adapt.lr``, ...)."""
    keys = []
    for field in dataclasses.fields(cls):
        key = f"{prefix}{field.name}"
        keys.append(key)
        if "section" in field.metadata:
            keys += known_keys(field.metadata["section"], f"{key}.")
    return keys


def _refuse_unknown_keys(node: dict, cls: type, prefix: str, known: list[str]) -> None:
    """Refuse, in params.yaml's order, the first key ``cls`` does not declare, naming the closest known key."""
    fields = {field.name: field for field in dataclasses.fields(cls)}
    for name, value in node.items():
        key = f"{prefix}{name}"
        if key in RENAMED_KEYS:
            raise UserError(RENAMED_KEYS[key])
        if name not in fields:
            close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.0)
            suggestion = f"; did you mean '{close[0]}'?" if close else ""
            raise UserError(f"params key '{key}' is not a known key{suggestion}")
        section = fields[name].metadata.get("section")
        if section is not None and isinstance(value, dict):
            _refuse_unknown_keys(value, section, f"{key}.", known)


def _build(node: Any, cls: type, prefix: str):
    if not isinstance(node, dict):
        raise UserError(f"params key '{prefix.rstrip('.')}' is {node!r}; expected a section of keys")
    values = {}
    for field in dataclasses.fields(cls):
        key = f"{prefix}{field.name}"
        if field.name not in node:
            raise UserError(f"params key '{key}' is missing from params.yaml; add it (see the README)")
        section = field.metadata.get("section")
        raw = node[field.name]
        values[field.name] = _build(raw, section, f"{key}.") if section else field.metadata["check"](raw, key)
    return cls(**values)


def parse(params: dict) -> Params:
    """The typed tree of a params.yaml mapping; every key and value checked, then the checks across keys."""
    _refuse_unknown_keys(params, Params, "", known_keys())
    tree = _build(params, Params, "")
    tree.launch_config()
    tree.model.check_norm()
    for stage in TRAINING_STAGES:
        tree.train_config(stage, aligned=stage in ("adapt", "selftrain"))
    tree.selftrain_config()
    tree.check_global_discriminator_fits()
    tree.synthetic_config()
    return tree


def validate(params: dict) -> None:
    """Check a params.yaml mapping (``parse`` without keeping the tree)."""
    parse(params)


def load_validated_params(path: Path = Path("params.yaml")) -> Params:
    """params.yaml as a typed tree, every section checked, so a bad value stops a stage before any work."""
    return parse(load_params(path))
