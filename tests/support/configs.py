"""Complete training configurations for unit tests, every value written out.

The library's config types have no defaults (params.yaml is the one source of them); the unit tests
below use small, fixed settings of their own: ADVENT's weights, D_g width 64 on full maps, a per-position
local term at weight 1e-3 with the target-only filter. ``changes`` override any field.
"""

from globallocal.alignment.aligners import AlignmentConfig
from globallocal.alignment.local import LocalAlignmentConfig
from globallocal.training.state import OptimConfig, TrainConfig

LOCAL = dict(representation="self_information", window=1, min_purity=0.5, conf_threshold=0.9,
             background_classes=(), gan_loss="vanilla", conf_filter="target", context=1)
ALIGNMENT = dict(global_family="advent", gan_loss="vanilla", global_d_width=64, global_d_pool=1,
                 lambda_adv_main=1e-3, lambda_adv_aux=2e-4, lambda_ent_main=1e-3, lambda_ent_aux=2e-4,
                 lambda_adv_local=1e-3, lambda_adv_local_aux=0.0, global_warmup_iters=0, local_start_iter=0, local_warmup_iters=0,
                 lr_d_local=None)
OPTIM = dict(lr=2.5e-4, momentum=0.9, weight_decay=5e-4, power=0.9, lr_d=1e-4, betas_d=(0.9, 0.99))
TRAIN = dict(lambda_seg_aux=0.1, multi_level=True, alignment=None, log_every=10, precision="fp32",
             channels_last=False, log_grad_norms=True, cudnn_benchmark=True, fused_optimizer=True, compile=False)


def local_config(**changes) -> LocalAlignmentConfig:
    return LocalAlignmentConfig(**{**LOCAL, **changes})


def alignment_config(**changes) -> AlignmentConfig:
    return AlignmentConfig(**{**ALIGNMENT, "local": local_config(), **changes})


def optim_config(iterations: int, max_iters: int, **changes) -> OptimConfig:
    return OptimConfig(iterations=iterations, max_iters=max_iters, **{**OPTIM, **changes})


def train_config(optim: OptimConfig, **changes) -> TrainConfig:
    return TrainConfig(optim=optim, **{**TRAIN, **changes})
