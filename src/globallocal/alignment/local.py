"""Step 2: class-aware alignment of local outputs (the paper's contribution, in our reading).

A *local output* is the K-dim output vector (softmax or self-information, as the global family uses) at
one position of the output map, average-pooled over non-overlapping ``window x window`` cells
(``window = 1`` gives the 1x1xK outputs of the paper's figure). Each local output gets a *category*:

* source: its ground-truth label (for window > 1 the majority label of the cell, ignore counted as a
  label of its own; cells whose majority share is below ``min_purity`` are dropped). Outputs labelled
  ignore (255) or one of ``background_classes`` never enter the loss: the noisy source background.
* target: the argmax of the (pooled) prediction, kept only where its probability >= ``conf_threshold``.
  With ``conf_filter = "both"`` the same confidence filter also drops source outputs whose own
  prediction is below the threshold, so that D_l cannot tell the domains apart by confidence alone.

The class-aware local discriminator D_l gives, per position, one source(0)/target(1) logit per
category; only the logit of the output's own category is used. With ``context > 1`` its first layer
sees a ``context x context`` neighbourhood of local outputs instead of a lone 1x1xK vector. Losses average
over the positions of
each category, then over the categories present, so frequent classes do not drown rare ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from globallocal.alignment.discriminators import LocalDiscriminator
from globallocal.alignment.gan_losses import (
    DECISION_THRESHOLD,
    SOURCE_LABEL,
    TARGET_LABEL,
    domain_probability,
    gan_loss,
)
from globallocal.alignment.representations import HeadOutputs, as_outputs

#: Category value of a local output that takes no part in the loss.
DROPPED = -1
#: Which domains the confidence filter applies to.
CONF_FILTERS = ("target", "both")


@dataclass(frozen=True)
class LocalAlignmentConfig:
    """Knobs of the local module; ``background_classes`` are trainIds. No defaults: params.yaml holds them."""

    representation: str
    window: int
    min_purity: float
    conf_threshold: float
    background_classes: tuple[int, ...]
    gan_loss: str
    conf_filter: str
    context: int


def pool_local_outputs(rep: torch.Tensor, window: int) -> torch.Tensor:
    """(N, K, H, W) -> (N, K, H // window, W // window) mean over non-overlapping cells."""
    if window == 1:
        return rep
    return F.avg_pool2d(rep, kernel_size=window, stride=window)


def source_categories(
    labels: torch.Tensor,
    num_classes: int,
    window: int = 1,
    min_purity: float = 0.5,
    background_classes: tuple[int, ...] = (),
) -> torch.Tensor:
    """Category of each source local output: (N, H, W) trainIds -> (N, H // window, W // window) long.

    Ignore pixels, background classes and impure cells become ``DROPPED``.
    """
    valid = labels < num_classes
    # Ignore is bin K, so a cell that is mostly ignore is dropped rather than given a minority class.
    bins = torch.where(valid, labels, torch.full_like(labels, num_classes)).long()
    if window == 1:
        category, share = bins, torch.ones_like(bins, dtype=torch.float32)
    else:
        one_hot = F.one_hot(bins, num_classes + 1).permute(0, 3, 1, 2).float()
        share, category = F.avg_pool2d(one_hot, kernel_size=window, stride=window).max(dim=1)
    keep = (category < num_classes) & (share >= min_purity)
    for background in background_classes:
        keep &= category != background
    return torch.where(keep, category, torch.full_like(category, DROPPED))


def target_categories(prob: torch.Tensor, window: int = 1, conf_threshold: float = 0.9) -> torch.Tensor:
    """Pseudo-label of each target local output: (N, K, H, W) probabilities -> (N, h, w) long.

    The argmax of the cell's mean probability, or ``DROPPED`` where that maximum is below the threshold.
    """
    confidence, category = pool_local_outputs(prob, window).max(dim=1)
    return torch.where(confidence >= conf_threshold, category, torch.full_like(category, DROPPED))


def confident(prob: torch.Tensor, window: int, conf_threshold: float) -> torch.Tensor:
    """(N, K, H, W) probabilities -> (N, h, w) bool: the cell's mean probability peaks >= threshold."""
    return pool_local_outputs(prob, window).amax(dim=1) >= conf_threshold


def class_balanced_mean(values: torch.Tensor, categories: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Mean over categories present of the mean of ``values`` within each category.

    values, categories: (M,) with categories in [0, num_classes). Returns a scalar (0 when M = 0, still
    attached to the graph so that backward() works).

    The counts are an ``index_add`` rather than ``bincount``, which reads its input's maximum on the host
    (a CUDA synchronisation); the classes present are selected once. The mean over the present classes
    keeps its data-dependent selection: a masked sum over all classes would add in another order (the
    vectorised reduction) and change the last bits.
    """
    if values.numel() == 0:
        return values.sum()
    sums = values.new_zeros(num_classes).index_add(0, categories, values)
    counts = categories.new_zeros(num_classes).index_add(0, categories, torch.ones_like(categories))
    present = (counts > 0).nonzero().squeeze(1)
    return (sums[present] / counts[present]).mean()


def _category_logits(d_out: torch.Tensor, categories: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick each kept position's logit of its own category: (N, K, h, w), (N, h, w) -> (M,), (M,).

    The kept positions are found once (one host read of their number on CUDA) and index both tensors.
    """
    kept = (categories != DROPPED).flatten().nonzero().squeeze(1)
    picked = d_out.gather(1, categories.clamp(min=0).unsqueeze(1)).squeeze(1)
    return picked.flatten()[kept], categories.flatten()[kept]


class LocalAlignment(nn.Module):
    """The local module: owns D_l and turns logits + categories into the generator / D_l losses.

    Heads are passed as raw (N, K, H, W) logits or as HeadOutputs (which share softmax and
    representations with the global term of the same head).
    """

    def __init__(self, num_classes: int, config: LocalAlignmentConfig):
        super().__init__()
        self.num_classes = num_classes
        self.config = config
        self.discriminator = LocalDiscriminator(num_classes, config.context)

    def local_outputs(self, outputs: torch.Tensor | HeadOutputs) -> torch.Tensor:
        """(N, K, H, W) logits -> (N, K, h, w) pooled representation."""
        return pool_local_outputs(as_outputs(outputs).represent(self.config.representation), self.config.window)

    def source_categories(self, labels: torch.Tensor, source: torch.Tensor | HeadOutputs | None = None) -> torch.Tensor:
        """Label categories of source local outputs; with ``conf_filter = "both"`` (and ``source``
        given) outputs whose own prediction is not confident are dropped too."""
        c = self.config
        categories = source_categories(labels, self.num_classes, c.window, c.min_purity, c.background_classes)
        if c.conf_filter == "both" and source is not None:
            keep = confident(as_outputs(source).prob().detach(), c.window, c.conf_threshold)
            categories = torch.where(keep, categories, torch.full_like(categories, DROPPED))
        return categories

    def target_categories(self, outputs: torch.Tensor | HeadOutputs) -> torch.Tensor:
        return target_categories(as_outputs(outputs).prob().detach(), self.config.window, self.config.conf_threshold)

    def _loss(self, local: torch.Tensor, categories: torch.Tensor, domain_label: float):
        picked, kept = _category_logits(self.discriminator(local).float(), categories)
        per_position = gan_loss(picked, domain_label, self.config.gan_loss, reduction="none")
        return class_balanced_mean(per_position, kept, self.num_classes), picked

    def generator_loss(self, target: torch.Tensor | HeadOutputs) -> torch.Tensor:
        """Make confident target local outputs of category c look 'source' to D_l[c]."""
        target = as_outputs(target)
        loss, _ = self._loss(self.local_outputs(target), self.target_categories(target), SOURCE_LABEL)
        return loss

    def discriminator_loss(
        self, source: torch.Tensor | HeadOutputs, source_labels: torch.Tensor, target: torch.Tensor | HeadOutputs
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """D_l's loss on detached outputs: source categories -> 0, target pseudo-categories -> 1, halved each.

        Returns the loss and, for logging, per domain: D_l's class-balanced loss (``d_loss/<domain>``: log 2 =
        chance), its mean P(target) (``d_out/<domain>``), its accuracy at 0.5 (``d_acc/<domain>``) and the
        fraction of local outputs kept (``local_kept/<domain>``), as detached 0-dim tensors; D_l's loss,
        output and accuracy on a domain where no local output was kept are NaN (undefined, and left out of
        the logged means).
        """
        source, target = as_outputs(source).detach(), as_outputs(target).detach()
        source_cat = self.source_categories(source_labels, source)
        target_cat = self.target_categories(target)
        loss_s, picked_s = self._loss(self.local_outputs(source), source_cat, SOURCE_LABEL)
        loss_t, picked_t = self._loss(self.local_outputs(target), target_cat, TARGET_LABEL)
        kind = self.config.gan_loss
        p_source, p_target = domain_probability(picked_s, kind), domain_probability(picked_t, kind)
        stats = {
            "d_loss/source": _defined_or_nan(loss_s, picked_s),
            "d_loss/target": _defined_or_nan(loss_t, picked_t),
            "d_out/source": _mean_or_nan(p_source),
            "d_out/target": _mean_or_nan(p_target),
            "d_acc/source": _mean_or_nan((p_source < DECISION_THRESHOLD).float()),
            "d_acc/target": _mean_or_nan((p_target >= DECISION_THRESHOLD).float()),
            "local_kept/source": (source_cat != DROPPED).float().mean(),
            "local_kept/target": (target_cat != DROPPED).float().mean(),
        }
        return 0.5 * loss_s + 0.5 * loss_t, stats


def _defined_or_nan(loss: torch.Tensor, picked: torch.Tensor) -> torch.Tensor:
    """A domain's detached loss; NaN when none of its local outputs was kept (the loss is then a 0)."""
    loss = loss.detach().float()
    return loss if picked.numel() else loss.new_full((), float("nan"))


def _mean_or_nan(x: torch.Tensor) -> torch.Tensor:
    """The detached mean of a (M,) tensor; NaN (a 0-dim tensor on its device) when M = 0."""
    x = x.detach()
    return x.mean() if x.numel() else x.new_full((), float("nan"), dtype=torch.float32)
