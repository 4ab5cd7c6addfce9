"""The CPU-sized segmentation networks: torchvision's MobileNetV3 (large or small) features with DeepLab-v2 heads.

Used by the embedded default, where a ResNet-101 would take hours per run on a laptop CPU.
The heads are the same ASPP sums as DeepLab-v2's, so every alignment method runs unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn
from torchvision.models import mobilenet_v3_large, mobilenet_v3_small

from globallocal.models.normalization import batchnorm_factory, group_norm
from globallocal.models.segmentation import SegmentationModel

#: torchvision's MobileNetV3 BatchNorm epsilon (its checkpoints were trained with it) ...
MOBILENET_BN_EPS = 0.001
#: ... and running-statistics momentum for its long ImageNet schedule (PyTorch's default is 0.1). Over a
#: few hundred iterations from scratch, 0.01 leaves the eval-mode statistics far behind the weights:
#: the embedded default passes ``model.bn_momentum: 0.1``.
MOBILENET_BN_MOMENTUM = 0.01
OUTPUT_STRIDES = (8, 16)


@dataclass(frozen=True)
class MobileNetVariant:
    """Where a torchvision MobileNetV3's ``features`` change stride, and the channels the heads read.

    ``stride16`` / ``stride32``: the ``features`` indices of the stride-16 and stride-32 stages (the
    1x1 conv to ``main_channels`` follows the latter); the aux head reads the end of the stride-16
    stage (``aux_channels``), the counterpart of ResNet's layer3.
    """

    build: object
    stride16: range
    stride32: range
    aux_channels: int
    main_channels: int


VARIANTS = {
    "large": MobileNetVariant(mobilenet_v3_large, range(7, 13), range(13, 16), 112, 960),
    "small": MobileNetVariant(mobilenet_v3_small, range(4, 9), range(9, 12), 48, 576),
}


class MobileNetV3Backbone(nn.Module):
    """(N, 3, H, W) -> (aux (N, C_aux, h, w), main (N, C_main, h, w)) with h = H / output_stride, rounded up.

    `features` keeps torchvision's module names, so a torchvision mobilenet_v3_large (or _small) state
    dict loads into it directly. torchvision's `dilated=True` gives output stride 16; for 8 the
    stride-16 stage is dilated as well, the way DeepLab dilates ResNet's layer3.
    """

    def __init__(self, norm_layer: type[nn.Module] | partial, output_stride: int, variant: str = "large"):
        super().__init__()
        spec = VARIANTS[variant]
        self.features = spec.build(weights=None, dilated=True, norm_layer=norm_layer).features
        self.aux_end = spec.stride16.stop
        if output_stride == 8:
            for index in spec.stride16:
                _dilate(self.features[index], dilation=2)
            for index in spec.stride32:
                _dilate(self.features[index], dilation=4)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        aux = self.features[: self.aux_end](images)
        main = self.features[self.aux_end :](aux)
        return aux, main


def _dilate(block: nn.Module, dilation: int) -> None:
    """Turn a block's spatial convs into stride-1 convs with `dilation`, keeping 'same' padding."""
    for module in block.modules():
        if isinstance(module, nn.Conv2d) and module.kernel_size[0] > 1:
            kernel = module.kernel_size[0]
            module.stride = (1, 1)
            module.dilation = (dilation, dilation)
            module.padding = ((kernel - 1) // 2 * dilation,) * 2


def mobilenetv3(
    num_classes: int, bn_protocol: str = "frozen", output_stride: int = 8, variant: str = "large",
    bn_momentum: float = MOBILENET_BN_MOMENTUM, norm: str = "batch",
) -> SegmentationModel:
    """MobileNetV3-``variant`` backbone (output stride 8 or 16) with an aux ASPP head on the end of its
    stride-16 stage (large: 112 ch, small: 48 ch) and a main ASPP head on its last conv (960 / 576 ch).

    Trained from scratch, pass bn_protocol "learned": BatchNorm statistics must be learned (their running
    averages with ``bn_momentum``). ``norm="group"``: GroupNorm everywhere instead, bn_protocol unused.
    Expects "imagenet" input normalisation (torchvision's weights).
    """
    spec = VARIANTS[variant]
    layer = group_norm if norm == "group" else batchnorm_factory(bn_protocol, MOBILENET_BN_EPS, bn_momentum)
    return SegmentationModel(
        backbone=MobileNetV3Backbone(layer, output_stride, variant),
        aux_in_channels=spec.aux_channels,
        main_in_channels=spec.main_channels,
        num_classes=num_classes,
        input_normalization="imagenet",
    )


def mobilenetv3_large(num_classes: int, bn_protocol: str = "frozen", output_stride: int = 8) -> SegmentationModel:
    """MobileNetV3-large: aux ASPP on 112 ch, main ASPP on 960 ch."""
    return mobilenetv3(num_classes, bn_protocol, output_stride, "large")


def mobilenetv3_small(num_classes: int, bn_protocol: str = "frozen", output_stride: int = 8) -> SegmentationModel:
    """MobileNetV3-small: aux ASPP on 48 ch, main ASPP on 576 ch (about a quarter of large's compute)."""
    return mobilenetv3(num_classes, bn_protocol, output_stride, "small")
