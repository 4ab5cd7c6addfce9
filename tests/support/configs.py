"""Complete training configurations for unit tests, every value written out.

The library's config types have no defaults (params.yaml is the one source of them); the unit tests
below use small, fixed settings of their own: ADVENT's weights, D_g width 64 on full maps, a per-position
local term at weight 1e-3 with the target-only filter. ``changes`` override any field.
"""

from globallocal.alignment.aligners import AlignmentConfig
from globallocal.alignment.local import LocalAlignmentConfig
from globallocal.data.synthetic import SyntheticConfig
from globallocal.training.distributed import LaunchConfig
from globallocal.training.selftraining import SelfTrainingConfig
from globallocal.training.state import OptimConfig, TrainConfig

LOCAL = dict(representation="self_information", window=1, min_purity=0.5, conf_threshold=0.9,
             background_classes=(), gan_loss="vanilla", conf_filter="target", context=1)
ALIGNMENT = dict(global_family="advent", gan_loss="vanilla", global_d_width=64, global_d_pool=1,
                 lambda_adv_main=1e-3, lambda_adv_aux=2e-4, lambda_ent_main=1e-3, lambda_ent_aux=2e-4,
                 lambda_adv_local=1e-3, lambda_adv_local_aux=0.0, global_warmup_iters=0, local_start_iter=0,
                 local_warmup_iters=0, lr_d_local=None)
OPTIM = dict(lr=2.5e-4, momentum=0.9, weight_decay=5e-4, power=0.9, lr_d=1e-4, betas_d=(0.9, 0.99))
#: The selftrain section's values in params.yaml at the time these tests were written.
SELFTRAIN = dict(lambda_pseudo=1.0, threshold_rule="class_balanced", top_p=0.5, rounds=1, teacher="none",
                 ema_momentum=0.99, ema_conf_threshold=0.968)
#: One process on one node.
LAUNCH = dict(nproc_per_node=1, nnodes=1, rdzv_endpoint="localhost:29500")
#: The embedded benchmark's generator at the sizes its own tests were written for (GTA5-like 384x212 source,
#: Cityscapes-like 2:1 512x256 target), seed 0, no shift.
SYNTHETIC = dict(seed=0, num_source=300, num_target_train=300, num_target_val=100, source_size=(384, 212),
                 target_size=(512, 256), shift="none", shift_severity=1)
TRAIN = dict(lambda_seg_aux=0.1, multi_level=True, alignment=None, log_every=10, precision="fp32",
             channels_last=False, log_grad_norms=True, cudnn_benchmark=True, fused_optimizer=True, compile=False,
             bn_stats="mixed")


def local_config(**changes) -> LocalAlignmentConfig:
    return LocalAlignmentConfig(**{**LOCAL, **changes})


def alignment_config(**changes) -> AlignmentConfig:
    return AlignmentConfig(**{**ALIGNMENT, "local": local_config(), **changes})


def optim_config(iterations: int, max_iters: int, **changes) -> OptimConfig:
    return OptimConfig(iterations=iterations, max_iters=max_iters, **{**OPTIM, **changes})


def train_config(optim: OptimConfig, **changes) -> TrainConfig:
    return TrainConfig(optim=optim, **{**TRAIN, **changes})


def selftraining_config(**changes) -> SelfTrainingConfig:
    return SelfTrainingConfig(**{**SELFTRAIN, **changes})


def launch_config(**changes) -> LaunchConfig:
    return LaunchConfig(**{**LAUNCH, **changes})


def synthetic_config(**changes) -> SyntheticConfig:
    return SyntheticConfig(**{**SYNTHETIC, **changes})
