"""The two discriminators: fully-convolutional on whole output maps (global), per-position (local)."""

from __future__ import annotations

import torch
from torch import nn

LEAKY_SLOPE = 0.2
GLOBAL_KERNEL = 4
GLOBAL_STRIDE = 2
#: Channel multipliers of D_g's four hidden layers; times the width (ADVENT / AdaptSegNet: 64).
GLOBAL_WIDTH_MULTIPLIERS = (1, 2, 4, 8)
ADVENT_GLOBAL_WIDTH = 64
#: D_g's five stride-2 convolutions need a map at least this many positions high and wide.
GLOBAL_MIN_INPUT = GLOBAL_STRIDE ** (len(GLOBAL_WIDTH_MULTIPLIERS) + 1)
LOCAL_CHANNELS = (256, 128)


class GlobalDiscriminator(nn.Module):
    """D_g: (N, K, H, W) output map -> (N, 1, H/32, W/32) source(0)/target(1) logits.

    Five 4x4 convolutions of stride 2, channels K-64-128-256-512-1, LeakyReLU 0.2 between them
    (AdaptSegNet / ADVENT); ``width`` scales the hidden channels (K-w-2w-4w-8w-1).
    """

    def __init__(self, num_classes: int, width: int = ADVENT_GLOBAL_WIDTH):
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = num_classes
        for out_channels in (width * m for m in GLOBAL_WIDTH_MULTIPLIERS):
            layers += [
                nn.Conv2d(in_channels, out_channels, GLOBAL_KERNEL, GLOBAL_STRIDE, padding=1),
                nn.LeakyReLU(LEAKY_SLOPE, inplace=True),
            ]
            in_channels = out_channels
        layers.append(nn.Conv2d(in_channels, 1, GLOBAL_KERNEL, GLOBAL_STRIDE, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LocalDiscriminator(nn.Module):
    """D_l: class-aware, per position. (N, K, h, w) local outputs -> (N, K, h, w) logits.

    1x1 convolutions K -> 256 -> 128 -> K with LeakyReLU 0.2; output channel c is the source(0)/target(1)
    logit for a local output of category c. ``context > 1`` (odd) makes the first convolution
    ``context x context`` (zero-padded, same size out), so D_l sees the outputs around each position.
    """

    def __init__(self, num_classes: int, context: int = 1):
        super().__init__()
        hidden, bottleneck = LOCAL_CHANNELS
        self.net = nn.Sequential(
            nn.Conv2d(num_classes, hidden, kernel_size=context, padding=context // 2),
            nn.LeakyReLU(LEAKY_SLOPE, inplace=True),
            nn.Conv2d(hidden, bottleneck, kernel_size=1),
            nn.LeakyReLU(LEAKY_SLOPE, inplace=True),
            nn.Conv2d(bottleneck, num_classes, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
