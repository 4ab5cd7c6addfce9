"""Is the local term fed right labels? The precision of its target pseudo-classes against ground truth.

The local term aligns a target local output with the source outputs of its pseudo-class (the argmax of
the cell's mean probability, kept where that reaches the confidence threshold: ``local.target_categories``).
On labelled target images (the dev split) the same filter is applied to a model's outputs and each kept
cell's pseudo-class is compared with the cell's ground-truth category (``local.source_categories``: the
majority label; ignore and impure cells have none and are left out of the precision). If most kept
outputs carry the wrong class, the local term pulls them towards the wrong source class.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader

from globallocal.alignment.local import DROPPED, source_categories, target_categories
from globallocal.models.segmentation import upsample


@dataclass
class FilterPrecision:
    """Counts accumulated over batches, per pseudo-class (K,) int64 tensors, plus the cells seen."""

    num_classes: int
    cells: int = 0
    kept: torch.Tensor = field(init=False)
    scored: torch.Tensor = field(init=False)
    correct: torch.Tensor = field(init=False)

    def __post_init__(self):
        self.kept = torch.zeros(self.num_classes, dtype=torch.int64)
        self.scored = torch.zeros(self.num_classes, dtype=torch.int64)
        self.correct = torch.zeros(self.num_classes, dtype=torch.int64)

    def update(self, prob: torch.Tensor, labels: torch.Tensor, window: int, conf_threshold: float,
               min_purity: float) -> None:
        """prob: (N, K, H, W) softmax at label resolution; labels: (N, H, W) trainIds, 255 = ignore."""
        pseudo = target_categories(prob, window, conf_threshold).cpu()
        truth = source_categories(labels.cpu(), self.num_classes, window, min_purity)
        kept = pseudo != DROPPED
        scored = kept & (truth != DROPPED)
        k = self.num_classes
        self.cells += pseudo.numel()
        self.kept += torch.bincount(pseudo[kept], minlength=k)
        self.scored += torch.bincount(pseudo[scored], minlength=k)
        self.correct += torch.bincount(pseudo[scored & (pseudo == truth)], minlength=k)

    def to_dict(self, class_names: list[str] | tuple[str, ...]) -> dict:
        """Share kept and precision (fractions; None where nothing was scored), overall and per pseudo-class."""
        scored, correct, kept = int(self.scored.sum()), int(self.correct.sum()), int(self.kept.sum())
        return {
            "cells": self.cells,
            "kept": kept,
            "share_kept": kept / self.cells if self.cells else None,
            "scored": scored,
            "precision": correct / scored if scored else None,
            "per_class": {
                name: {
                    "kept": int(self.kept[c]),
                    "precision": int(self.correct[c]) / int(self.scored[c]) if self.scored[c] else None,
                }
                for c, name in enumerate(class_names)
            },
        }


#: Dev images per forward pass of the diagnostics.
DIAGNOSTIC_BATCH = 8


@torch.inference_mode()
def local_filter_precision(
    model: torch.nn.Module, dataset, device: torch.device | str, window: int, conf_threshold: float,
    min_purity: float, num_classes: int,
) -> FilterPrecision:
    """The local term's target filter on ``model``'s main head over a labelled dataset, as training sees it.

    ``dataset`` yields {"image": (3, H, W), "label": (H, W)} at the training size; logits are upsampled
    to (H, W) as in training before the softmax and the window pooling.
    """
    model.eval().to(device)
    counts = FilterPrecision(num_classes)
    for batch in DataLoader(dataset, batch_size=DIAGNOSTIC_BATCH, shuffle=False):
        images = batch["image"].to(device)
        _, main = model(images)
        prob = upsample(main.float(), images.shape[-2:]).softmax(dim=1)
        counts.update(prob, batch["label"], window, conf_threshold, min_purity)
    return counts
