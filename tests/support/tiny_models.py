"""Tiny stand-ins for the segmentation network and its batches, shared by the training-loop tests."""

import torch
from torch import nn

#: Classes of the default tiny segmenter.
K = 3


class TinySegmenter(nn.Module):
    """Stand-in for SegmentationModel: (aux, main) logits at half resolution of a (N, 3, H, W) input.

    Two lr groups (heads at 10x), as the real networks; ``single_lr_group`` puts every parameter in one.
    """

    input_normalization = "imagenet"

    def __init__(self, num_classes: int = K, single_lr_group: bool = False):
        super().__init__()
        self.single_lr_group = single_lr_group
        self.backbone = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.aux_head = nn.Conv2d(8, num_classes, 1)
        self.main_head = nn.Conv2d(8, num_classes, 1)

    def forward(self, x):
        features = torch.relu(self.backbone(x))
        return self.aux_head(features), self.main_head(features)

    def param_groups(self, base_lr):
        if self.single_lr_group:
            return [{"params": list(self.parameters()), "lr": base_lr, "lr_mult": 1.0}]
        heads = [*self.aux_head.parameters(), *self.main_head.parameters()]
        return [
            {"params": list(self.backbone.parameters()), "lr": base_lr, "lr_mult": 1.0},
            {"params": heads, "lr": 10 * base_lr, "lr_mult": 10.0},
        ]


def batches(seed: int = 0, num_classes: int = K, ignored_rows: int = 4):
    """A labelled source batch and an unlabelled target batch of two (3, 32, 32) images each.

    The first ``ignored_rows`` label rows are ignore (255); the target is shifted by +1.
    """
    g = torch.Generator().manual_seed(seed)
    source = {
        "image": torch.randn(2, 3, 32, 32, generator=g),
        "label": torch.randint(0, num_classes, (2, 32, 32), generator=g),
    }
    source["label"][:, :ignored_rows] = 255
    target = {"image": torch.randn(2, 3, 32, 32, generator=g) + 1}
    return source, target


class TinyBatchNormSegmenter(TinySegmenter):
    """TinySegmenter with a BatchNorm (momentum 0.1) after its backbone convolution: running statistics to
    study (``adapt.bn_stats``)."""

    def __init__(self, num_classes: int = K):
        super().__init__(num_classes)
        self.norm = nn.BatchNorm2d(8, momentum=0.1)

    def forward(self, x):
        features = torch.relu(self.norm(self.backbone(x)))
        return self.aux_head(features), self.main_head(features)

    def param_groups(self, base_lr):
        groups = super().param_groups(base_lr)
        groups[0]["params"] += list(self.norm.parameters())
        return groups
