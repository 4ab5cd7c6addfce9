"""The DeepLab-v2 classifier head: atrous spatial pyramid pooling as a sum of dilated convs."""

from __future__ import annotations

import torch
from torch import nn

#: DeepLab-v2's four atrous rates (ASPP-L).
DEFAULT_RATES: tuple[int, ...] = (6, 12, 18, 24)
#: Std of the Gaussian the branch weights start from, as in DeepLab-v2 / ADVENT.
BRANCH_INIT_STD = 0.01


class ASPPClassifier(nn.Module):
    """Sum of one 3x3 dilated conv per rate, each mapping features straight to class logits.

    AdaptSegNet's version returns inside its loop and so only ever uses the first branch;
    here every branch contributes, as DeepLab-v2 intends.
    """

    def __init__(self, in_channels: int, num_classes: int, rates: tuple[int, ...] = DEFAULT_RATES):
        super().__init__()
        # padding == dilation keeps the spatial size of a 3x3 conv unchanged.
        self.branches = nn.ModuleList(
            nn.Conv2d(in_channels, num_classes, kernel_size=3, padding=rate, dilation=rate, bias=True)
            for rate in rates
        )
        for branch in self.branches:
            nn.init.normal_(branch.weight, mean=0.0, std=BRANCH_INIT_STD)
            # Zero bias: no class is favoured before training starts.
            nn.init.zeros_(branch.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) features -> (N, K, h, w) logits."""
        logits = self.branches[0](features)
        for branch in self.branches[1:]:
            logits = logits + branch(features)
        return logits
