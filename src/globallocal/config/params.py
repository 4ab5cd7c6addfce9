"""params.yaml -> one typed, frozen, validated tree (``Params``). The only place that knows the params layout.

Each section of params.yaml is a frozen dataclass (``globallocal.config.sections``), and each of its
fields declares beside it what a valid value is (``globallocal.config.values``). ``parse`` walks
params.yaml once against ``Params`` (``globallocal.config.reading``: unknown keys refused by construction,
naming the closest known one; missing keys named; every value checked with a message naming its key and
the allowed values; numbers finite). Then the checks that span keys run (poly horizon, D_g's input size,
the benchmark's roots). The library below takes the typed configurations the tree builds
(``Params.train_config`` ...) and trusts them. There are no defaults here: params.yaml is the one source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from globallocal.alignment.aligners import AlignmentConfig
from globallocal.alignment.discriminators import GLOBAL_MIN_INPUT
from globallocal.alignment.global_alignment import FAMILIES, family_representation
from globallocal.alignment.local import LocalAlignmentConfig
from globallocal.config import reading
from globallocal.config.reading import load_params
from globallocal.config.sections import (
    AdabnSection,
    AdaptSection,
    DataSection,
    EvaluateSection,
    ModelSection,
    PrepareSection,
    ScheduleSection,
    SelfTrainSection,
    TrainSection,
)
from globallocal.config.values import device, integer, section, workers
from globallocal.data.labels import NUM_CLASSES
from globallocal.data.loading import DataConfig
from globallocal.data.synthetic import SOURCE_DIR as SYNTHETIC_SOURCE_DIR
from globallocal.data.synthetic import TARGET_DIR as SYNTHETIC_TARGET_DIR
from globallocal.data.synthetic import SyntheticConfig
from globallocal.errors import UserError
from globallocal.evaluation.probe import ProbeConfig, common_size
from globallocal.training.distributed import LaunchConfig
from globallocal.training.selftraining import SelfTrainingConfig
from globallocal.training.snapshots import SnapshotConfig
from globallocal.training.stage import StageConfig
from globallocal.training.state import OptimConfig, TrainConfig

TRAINING_STAGES = ("pretrain", "adapt", "oracle", "selftrain")


@dataclass(frozen=True)
class Params:
    """The whole of params.yaml, typed. Build it with ``parse`` or ``load_validated_params``."""

    seed: int = integer()
    device: str = device()
    num_workers: int | str = workers()
    data: DataSection = section(DataSection)
    prepare: PrepareSection = section(PrepareSection)
    model: ModelSection = section(ModelSection)
    train: TrainSection = section(TrainSection)
    pretrain: ScheduleSection = section(ScheduleSection)
    adapt: AdaptSection = section(AdaptSection)
    selftrain: SelfTrainSection = section(SelfTrainSection)
    oracle: ScheduleSection = section(ScheduleSection)
    adabn: AdabnSection = section(AdabnSection)
    evaluate: EvaluateSection = section(EvaluateSection)

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
            global_warmup_iters=a.global_warmup_iters, local_start_iter=a.local_start_iter,
            local_warmup_iters=a.local_warmup_iters,
            lr_d_local=a.lr_d_local, local=local,
        )

    def bn_stats(self, stage: str, aligned: bool) -> str:
        """The BatchNorm statistics a training stage's model keeps: ``adapt.bn_stats`` for the adapt run,
        ``selftrain.bn_stats`` for self-training and its control (the stages that forward target batches);
        mixed elsewhere (pretrain, source_only, oracle see one domain: nothing to separate or re-estimate)."""
        if stage == "adapt" and aligned:
            return self.adapt.bn_stats
        if stage == "selftrain":
            return self.selftrain.bn_stats
        return "mixed"

    def train_config(self, stage: str, aligned: bool) -> TrainConfig:
        """The full configuration of a training stage; ``aligned`` switches the adapt stage's alignment terms on."""
        train = self.train
        alignment = self.alignment_config() if aligned else None
        return TrainConfig(
            bn_stats=self.bn_stats(stage, aligned),
            optim=self.optim_config(stage), lambda_seg_aux=train.lambda_seg_aux, multi_level=train.multi_level,
            alignment=alignment, log_every=train.log_every,
            precision=train.precision, channels_last=train.channels_last, log_grad_norms=train.log_grad_norms,
            cudnn_benchmark=train.cudnn_benchmark, fused_optimizer=train.fused_optimizer, compile=train.compile,
        )

    def data_config(self) -> DataConfig:
        """Where the datasets are and the sizes their images are resized to for training."""
        d = self.data
        return DataConfig(source=d.source, source_root=d.source_root, target_root=d.target_root,
                          lists_dir=d.lists_dir, source_size=d.source_size, target_size=d.target_size,
                          train_crop=d.train_crop)

    def stage_config(self, stage: str, aligned: bool = False) -> StageConfig:
        """Everything a training stage runs with (``training_stage``'s input), built here once."""
        return StageConfig(
            launch=self.launch_config(), device=self.device, seed=self.seed,
            num_workers=self.num_workers, batch_size=self.train.batch_size,
            train=self.train_config(stage, aligned=aligned), model_spec=self.model.spec(NUM_CLASSES),
            data=self.data_config(), snapshots=self.snapshot_config(), adabn_batch_size=self.adabn.batch_size,
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

    def probe_config(self) -> ProbeConfig:
        """The evaluate stage's domain probe: ``evaluate.probe_*``, D_g's pooling, the run's seed."""
        e = self.evaluate
        return ProbeConfig(steps=e.probe_steps, batch_size=e.probe_batch_size, width=e.probe_width, lr=e.probe_lr,
                           pool=self.adapt.global_d_pool, seed=self.seed)

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

    def training_sizes(self) -> dict[str, tuple[int, int]]:
        """The (width, height) of the maps each domain trains at, by the params key that sets it:
        ``data.train_crop`` for both when set, else each domain's resized size."""
        data = self.data
        if data.train_crop is not None:
            return {"data.train_crop": data.train_crop}
        return {"data.source_size": data.source_size, "data.target_size": data.target_size}

    def check_train_crop(self) -> None:
        """``data.train_crop`` must fit inside both resized sizes (it crops, never pads)."""
        crop, data = self.data.train_crop, self.data
        if crop is None:
            return
        for key, (width, height) in (("data.source_size", data.source_size), ("data.target_size", data.target_size)):
            if crop[0] > width or crop[1] > height:
                raise UserError(
                    f"params key 'data.train_crop' is [{crop[0]}, {crop[1]}] but {key} is [{width}, {height}]: "
                    f"the crop must fit inside both domains' sizes; lower data.train_crop (or set it to null)"
                )

    def check_global_discriminator_fits(self) -> None:
        """D_g must see a map of at least GLOBAL_MIN_INPUT x GLOBAL_MIN_INPUT positions in both domains, and so
        must the evaluate stage's domain probe (D_g's architecture, whatever the family) at its map size."""
        data = self.data
        probe_size = common_size([data.source_size, data.target_size], data.train_crop)
        self._check_d_input({"data.train_crop" if data.train_crop else "data.target_size": probe_size})
        if FAMILIES[self.adapt.global_family].has_discriminator:
            self._check_d_input(self.training_sizes())

    def _check_d_input(self, sizes: dict[str, tuple[int, int]]) -> None:
        pool = self.adapt.global_d_pool
        for key, (width, height) in sizes.items():
            seen = (math.ceil(width / pool), math.ceil(height / pool))
            if min(seen) < GLOBAL_MIN_INPUT:
                raise UserError(
                    f"params keys '{key}' ({width}x{height}) and 'adapt.global_d_pool' ({pool}): D_g (and the "
                    f"domain probe) would see a {seen[0]}x{seen[1]} map, but its five stride-2 convolutions need at "
                    f"least {GLOBAL_MIN_INPUT}x{GLOBAL_MIN_INPUT}; lower adapt.global_d_pool or raise {key}"
                )


# ---- parsing -------------------------------------------------------------------------------------

def known_keys() -> list[str]:
    """Every key path params.yaml declares, sections included (``adapt``, ``adapt.lr``, ...)."""
    return reading.known_keys(Params)


def parse(params: dict) -> Params:
    """The typed tree of a params.yaml mapping; every key and value checked, then the checks across keys."""
    tree = reading.build_tree(params, Params)
    tree.launch_config()
    tree.model.check_norm()
    tree.model.check_backbone_weights()
    for stage in TRAINING_STAGES:
        tree.train_config(stage, aligned=stage == "adapt")
    tree.selftrain_config()
    tree.check_train_crop()
    tree.check_global_discriminator_fits()
    tree.synthetic_config()
    return tree


def validate(params: dict) -> None:
    """Check a params.yaml mapping (``parse`` without keeping the tree)."""
    parse(params)


def load_validated_params(path: Path = Path("params.yaml")) -> Params:
    """params.yaml as a typed tree, every section checked, so a bad value stops a stage before any work."""
    return parse(load_params(path))
