"""Step 1: global output alignment of one output head, in one of four families.

* ``adaptsegnet``: D_g sees softmax(P) (Tsai et al., CVPR 2018).
* ``advent``: D_g sees the weighted self-information map (Vu et al., CVPR 2019).
* ``minent``: no discriminator; the generator minimises the mean target entropy (ADVENT's MinEnt).
* ``none``: no global term (local-only ablations).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from globallocal.alignment.discriminators import ADVENT_GLOBAL_WIDTH, GlobalDiscriminator
from globallocal.alignment.gan_losses import (
    DECISION_THRESHOLD,
    SOURCE_LABEL,
    TARGET_LABEL,
    domain_probability,
    gan_loss,
)
from globallocal.alignment.representations import HeadOutputs, as_outputs, mean_entropy


@dataclass(frozen=True)
class GlobalFamily:
    """What one global family is, read by the aligners, the config checks and the experiment runner."""

    #: The output representation it aligns (what D_g sees; the local term follows it under ``auto``).
    representation: str
    #: Whether it trains a discriminator D_g (adversarial) or acts on the target outputs alone.
    has_discriminator: bool
    #: The params prefix of its per-head weights (``<prefix>_main``, ``<prefix>_aux``); None: no global term.
    weight_prefix: str | None


#: The one table of global families: a new family is one row here plus its loss in ``GlobalAlignment``.
FAMILIES = {
    "adaptsegnet": GlobalFamily(representation="softmax", has_discriminator=True, weight_prefix="lambda_adv"),
    "advent": GlobalFamily(representation="self_information", has_discriminator=True, weight_prefix="lambda_adv"),
    "minent": GlobalFamily(representation="self_information", has_discriminator=False, weight_prefix="lambda_ent"),
    "none": GlobalFamily(representation="self_information", has_discriminator=False, weight_prefix=None),
}
GLOBAL_FAMILIES = tuple(FAMILIES)
#: The families that add a global term (every one but ``none``): the main table's rows.
ALIGNING_FAMILIES = tuple(name for name, family in FAMILIES.items() if family.weight_prefix is not None)


def family_representation(family: str) -> str:
    """The output representation a family aligns: softmax for AdaptSegNet, self-information otherwise."""
    return FAMILIES[family].representation


class GlobalAlignment(nn.Module):
    """Global alignment of one head's (N, K, H, W) logits (already upsampled to the input size).

    ``d_pool`` > 1: D_g sees the map a family aligns average-pooled over ``d_pool`` x ``d_pool`` pixels
    (edges: the mean of the pixels there), d_pool^2 times fewer positions; ADVENT's D_g sees the whole
    input-size map (1). MinEnt's entropy is always the mean over every pixel.
    """

    def __init__(
        self, family: str, num_classes: int, gan_loss_kind: str = "vanilla", d_width: int = ADVENT_GLOBAL_WIDTH,
        d_pool: int = 1,
    ):
        super().__init__()
        if family not in GLOBAL_FAMILIES:
            raise ValueError(f"unknown global family {family!r}; expected one of {GLOBAL_FAMILIES}")
        self.family = family
        self.gan_loss_kind = gan_loss_kind
        self.d_pool = d_pool
        self.discriminator = (
            GlobalDiscriminator(num_classes, d_width) if FAMILIES[family].has_discriminator else None
        )

    @property
    def has_discriminator(self) -> bool:
        return self.discriminator is not None

    def _discriminate(self, outputs: HeadOutputs) -> torch.Tensor:
        """D_g's logits in float32 (the convolutions may run in a lower precision under autocast)."""
        seen = outputs.represent(FAMILIES[self.family].representation)
        if self.d_pool > 1:
            seen = F.avg_pool2d(seen, self.d_pool, ceil_mode=True)
        return self.discriminator(seen).float()

    def generator_loss(self, target: torch.Tensor | HeadOutputs) -> torch.Tensor:
        """The term G minimises on a target batch (logits or HeadOutputs): fool D_g into 'source', or
        the target entropy."""
        target = as_outputs(target)
        if self.family == "minent":
            return mean_entropy(target.prob())
        if FAMILIES[self.family].weight_prefix is None:
            return target.logits.new_zeros((), dtype=torch.float32)
        return gan_loss(self._discriminate(target), SOURCE_LABEL, self.gan_loss_kind)

    def discriminator_loss(
        self, source: torch.Tensor | HeadOutputs, target: torch.Tensor | HeadOutputs
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """D_g's loss on detached outputs, each domain's half weighted 0.5 (ADVENT).

        Returns the loss and, for logging, as detached 0-dim tensors per domain: D_g's loss on that domain
        (``d_loss/<domain>``: log 2 = chance, 0 = perfect), its mean P(target) (``d_out/<domain>``) and its
        accuracy (``d_acc/<domain>``: the share of output positions on the right side of 0.5). Read the
        loss and P(target) first: an accuracy of 1.0 holds for outputs of 0.500 against 0.501 too.
        """
        d_source = self._discriminate(as_outputs(source).detach())
        d_target = self._discriminate(as_outputs(target).detach())
        loss_source = gan_loss(d_source, SOURCE_LABEL, self.gan_loss_kind)
        loss_target = gan_loss(d_target, TARGET_LABEL, self.gan_loss_kind)
        loss = 0.5 * loss_source + 0.5 * loss_target
        p_source = domain_probability(d_source, self.gan_loss_kind)
        p_target = domain_probability(d_target, self.gan_loss_kind)
        stats = {
            "d_loss/source": loss_source.detach(),
            "d_loss/target": loss_target.detach(),
            "d_out/source": p_source.detach().mean(),
            "d_out/target": p_target.detach().mean(),
            "d_acc/source": (p_source < DECISION_THRESHOLD).float().mean(),
            "d_acc/target": (p_target >= DECISION_THRESHOLD).float().mean(),
        }
        return loss, stats
