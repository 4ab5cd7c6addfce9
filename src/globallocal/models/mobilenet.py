"""The CPU-sized segmentation network: torchvision's MobileNetV3-large features with DeepLab-v2 heads.

Used by the embedded default, where a ResNet-101 would take hours per run on a laptop CPU.
The heads are the same ASPP sums as DeepLab-v2's, so every alignment method runs unchanged.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torchvision.models import mobilenet_v3_large
from torchvision.ops import FrozenBatchNorm2d

from globallocal.models.segmentation import SegmentationModel

#: torchvision's MobileNetV3 BatchNorm epsilon (its checkpoints were trained with it) ...
MOBILENET_BN_EPS = 0.001
#: ... and running-statistics momentum (PyTorch's default is 0.1).
MOBILENET_BN_MOMENTUM = 0.01
#: `features` indices: blocks 7..12 form the stride-16 stage (80 -> 112 channels), blocks 13..15
#: the stride-32 stage (160 channels) and block 16 the 1x1 conv to 960 channels.
STRIDE16_STAGE = range(7, 13)
STRIDE32_STAGE = range(13, 16)
#: The aux head reads the end of the stride-16 stage, the counterpart of ResNet's layer3.
AUX_FEATURES_END = STRIDE16_STAGE.stop
AUX_CHANNELS = 112
MAIN_CHANNELS = 960
OUTPUT_STRIDES = (8, 16)


class MobileNetV3Backbone(nn.Module):
    """(N, 3, H, W) -> (aux (N, 112, h, w), main (N, 960, h, w)) with h = H / output_stride, rounded up.

    `features` keeps torchvision's module names, so a torchvision mobilenet_v3_large state dict
    loads into it directly. torchvision's `dilated=True` gives output stride 16; for 8 the
    stride-16 stage is dilated as well, the way DeepLab dilates ResNet's layer3.
    """

    def __init__(self, norm_layer: type[nn.Module] | partial, output_stride: int):
        super().__init__()
        self.features = mobilenet_v3_large(weights=None, dilated=True, norm_layer=norm_layer).features
        if output_stride == 8:
            for index in STRIDE16_STAGE:
                _dilate(self.features[index], dilation=2)
            for index in STRIDE32_STAGE:
                _dilate(self.features[index], dilation=4)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        aux = self.features[:AUX_FEATURES_END](images)
        main = self.features[AUX_FEATURES_END:](aux)
        return aux, main


def _dilate(block: nn.Module, dilation: int) -> None:
    """Turn a block's spatial convs into stride-1 convs with `dilation`, keeping 'same' padding."""
    for module in block.modules():
        if isinstance(module, nn.Conv2d) and module.kernel_size[0] > 1:
            kernel = module.kernel_size[0]
            module.stride = (1, 1)
            module.dilation = (dilation, dilation)
            module.padding = ((kernel - 1) // 2 * dilation,) * 2


def mobilenetv3_large(num_classes: int, freeze_bn: bool = True, output_stride: int = 8) -> SegmentationModel:
    """MobileNetV3-large backbone (output stride 8 or 16), aux ASPP on 112 ch, main ASPP on 960 ch.

    Trained from scratch, pass freeze_bn=False: BatchNorm statistics must be learned.
    Expects "imagenet" input normalisation (torchvision's weights).
    """
    if freeze_bn:
        norm_layer = partial(FrozenBatchNorm2d, eps=MOBILENET_BN_EPS)
    else:
        norm_layer = partial(nn.BatchNorm2d, eps=MOBILENET_BN_EPS, momentum=MOBILENET_BN_MOMENTUM)
    return SegmentationModel(
        backbone=MobileNetV3Backbone(norm_layer, output_stride),
        aux_in_channels=AUX_CHANNELS,
        main_in_channels=MAIN_CHANNELS,
        num_classes=num_classes,
        input_normalization="imagenet",
    )
