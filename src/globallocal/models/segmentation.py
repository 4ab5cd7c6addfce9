"""The segmentation network G shared by every architecture: a backbone plus aux and main heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from globallocal.models.aspp import ASPPClassifier

#: How input images must be normalised for a backbone's weights:
#: "caffe_bgr" = BGR minus the Caffe ImageNet mean, no std scaling (DeepLab-v2 Caffe weights);
#: "imagenet" = RGB in [0, 1] minus torchvision's ImageNet mean, divided by its std;
#: "tf_lite" = RGB minus 127, divided by 128 (TensorFlow EfficientNet-Lite's weights, models/efficientnet.py).
#: data/transforms.py applies them.
INPUT_NORMALIZATIONS = ("caffe_bgr", "imagenet", "tf_lite")
#: Heads start from scratch while the backbone is pretrained, so heads learn faster (DeepLab-v2).
HEAD_LR_MULT = 10.0
BACKBONE_LR_MULT = 1.0


def upsample(logits: torch.Tensor, size_hw) -> torch.Tensor:
    """Bilinear (align_corners=True) upsampling of (N, K, h, w) logits to (N, K, H, W)."""
    return F.interpolate(logits, size=tuple(size_hw), mode="bilinear", align_corners=True)


class SegmentationModel(nn.Module):
    """Images -> (aux_logits, main_logits) at feature resolution; the caller upsamples.

    `backbone` maps (N, 3, H, W) images to a pair (aux_features, main_features);
    `aux_head` and `main_head` map each to (N, K, h, w) logits.
    """

    def __init__(
        self,
        backbone: nn.Module,
        aux_in_channels: int,
        main_in_channels: int,
        num_classes: int,
        input_normalization: str,
    ):
        super().__init__()
        self.backbone = backbone
        self.aux_head = ASPPClassifier(aux_in_channels, num_classes)
        self.main_head = ASPPClassifier(main_in_channels, num_classes)
        self.num_classes = num_classes
        self.input_normalization = input_normalization

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, H, W) normalised images -> ((N, K, h, w) aux logits, (N, K, h, w) main logits)."""
        aux_features, main_features = self.backbone(images)
        return self.aux_head(aux_features), self.main_head(main_features)

    def param_groups(self, base_lr: float) -> list[dict]:
        """Optimiser groups: backbone at base_lr, both heads at 10x; trainable params only.

        Each group carries "lr_mult" so a poly schedule can set lr = lr_mult * scheduled base lr.
        """
        heads = [*self.aux_head.parameters(), *self.main_head.parameters()]
        return [
            _group("backbone", self.backbone.parameters(), base_lr, BACKBONE_LR_MULT),
            _group("heads", heads, base_lr, HEAD_LR_MULT),
        ]


def _group(name: str, params, base_lr: float, lr_mult: float) -> dict:
    trainable = [param for param in params if param.requires_grad]
    return {"params": trainable, "lr": base_lr * lr_mult, "lr_mult": lr_mult, "name": name}
