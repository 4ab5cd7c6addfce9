"""DeepLab-v2 with a ResNet-101 backbone at output stride 8, as used by AdaptSegNet and ADVENT.

Module and parameter names follow torchvision's ResNet (conv1, bn1, layer1..layer4,
downsample.0/1), which is also what DeepLab-v2 Caffe conversions use after their "Scale."
prefix, so both kinds of checkpoint load without renaming.
"""

from __future__ import annotations

import torch
from torch import nn

from globallocal.models.normalization import batchnorm_factory
from globallocal.models.segmentation import SegmentationModel

#: Bottleneck blocks per stage of ResNet-101.
RESNET101_BLOCKS = (3, 4, 23, 3)
BOTTLENECK_EXPANSION = 4
STEM_CHANNELS = 64
#: Channels out of layer3 (aux head input) and layer4 (main head input).
LAYER3_CHANNELS = 1024
LAYER4_CHANNELS = 2048
#: layer3 and layer4 keep stride 1 and dilate instead, so features stay at 1/8 of the input.
LAYER3_DILATION = 2
LAYER4_DILATION = 4
OUTPUT_STRIDE = 8


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (dilated) -> 1x1 residual block, Caffe-style: the stride sits in the first 1x1."""

    def __init__(
        self,
        in_channels: int,
        width: int,
        stride: int,
        dilation: int,
        norm_layer: type[nn.Module],
    ):
        super().__init__()
        out_channels = width * BOTTLENECK_EXPANSION
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=1, stride=stride, bias=False)
        self.bn1 = norm_layer(width)
        self.conv2 = nn.Conv2d(
            width, width, kernel_size=3, padding=dilation, dilation=dilation, bias=False
        )
        self.bn2 = norm_layer(width)
        self.conv3 = nn.Conv2d(width, out_channels, kernel_size=1, bias=False)
        self.bn3 = norm_layer(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                norm_layer(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) -> (N, 4 * width, H / stride, W / stride)."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _make_stage(
    in_channels: int,
    width: int,
    num_blocks: int,
    stride: int,
    dilation: int,
    norm_layer: type[nn.Module],
) -> nn.Sequential:
    out_channels = width * BOTTLENECK_EXPANSION
    blocks = [Bottleneck(in_channels, width, stride, dilation, norm_layer)]
    blocks += [
        Bottleneck(out_channels, width, 1, dilation, norm_layer) for _ in range(num_blocks - 1)
    ]
    return nn.Sequential(*blocks)


class ResNet101Backbone(nn.Module):
    """Dilated ResNet-101 (DeepLab-v2): (N, 3, H, W) -> (layer3 (N, 1024, h, w), layer4 (N, 2048, h, w)).

    h = ceil((floor(ceil(H / 2) / 2) + 1) / 2) (the Caffe-style max-pool rounds up):
    H = 65 -> 9, 360 -> 46, 512 -> 65, 640 -> 81, 1024 -> 129.
    """

    def __init__(self, norm_layer: type[nn.Module]):
        super().__init__()
        self.conv1 = nn.Conv2d(3, STEM_CHANNELS, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(STEM_CHANNELS)
        self.relu = nn.ReLU(inplace=True)
        # ceil_mode matches Caffe's pooling arithmetic, which the DeepLab-v2 weights were trained with.
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True)
        blocks1, blocks2, blocks3, blocks4 = RESNET101_BLOCKS
        self.layer1 = _make_stage(STEM_CHANNELS, 64, blocks1, 1, 1, norm_layer)
        self.layer2 = _make_stage(256, 128, blocks2, 2, 1, norm_layer)
        self.layer3 = _make_stage(512, 256, blocks3, 1, LAYER3_DILATION, norm_layer)
        self.layer4 = _make_stage(LAYER3_CHANNELS, 512, blocks4, 1, LAYER4_DILATION, norm_layer)
        _init_weights(self)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        x = self.layer2(self.layer1(x))
        layer3 = self.layer3(x)
        layer4 = self.layer4(layer3)
        return layer3, layer4


def _init_weights(backbone: nn.Module) -> None:
    """He init for convs (torchvision's choice); only matters when no checkpoint is loaded."""
    for module in backbone.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")


def deeplabv2_resnet101(num_classes: int, bn_protocol: str = "frozen", bn_momentum: float = 0.1) -> SegmentationModel:
    """DeepLab-v2 ResNet-101, randomly initialised: aux ASPP on layer3, main ASPP on layer4.

    With bn_protocol "frozen", every BatchNorm uses its running statistics and has no trainable affine
    parameters (batch 1 at DeepLab sizes is far too small to estimate them); see models/normalization.py.
    The model expects "caffe_bgr" input; build_model switches that when it loads torchvision weights.
    """
    return SegmentationModel(
        backbone=ResNet101Backbone(batchnorm_factory(bn_protocol, momentum=bn_momentum)),
        aux_in_channels=LAYER3_CHANNELS,
        main_in_channels=LAYER4_CHANNELS,
        num_classes=num_classes,
        input_normalization="caffe_bgr",
    )
