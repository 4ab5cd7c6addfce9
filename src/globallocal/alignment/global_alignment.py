"""Step 1: global output alignment of one output head, in one of four families.

* ``adaptsegnet``: D_g sees softmax(P) (Tsai et al., CVPR 2018).
* ``advent``: D_g sees the weighted self-information map (Vu et al., CVPR 2019).
* ``minent``: no discriminator; the generator minimises the mean target entropy (ADVENT's MinEnt).
* ``none``: no global term (local-only ablations).
"""

from __future__ import annotations

import torch
from torch import nn

from globallocal.alignment.discriminators import GlobalDiscriminator
from globallocal.alignment.gan_losses import SOURCE_LABEL, TARGET_LABEL, domain_probability, gan_loss
from globallocal.alignment.representations import mean_entropy, represent

GLOBAL_FAMILIES = ("adaptsegnet", "advent", "minent", "none")
_DISCRIMINATOR_INPUT = {"adaptsegnet": "softmax", "advent": "self_information"}


def family_representation(family: str) -> str:
    """The output representation a family aligns: softmax for AdaptSegNet, self-information otherwise."""
    return _DISCRIMINATOR_INPUT.get(family, "self_information")


class GlobalAlignment(nn.Module):
    """Global alignment of one head's (N, K, H, W) logits (already upsampled to the input size)."""

    def __init__(self, family: str, num_classes: int, gan_loss_kind: str = "vanilla"):
        super().__init__()
        if family not in GLOBAL_FAMILIES:
            raise ValueError(f"unknown global family {family!r}; expected one of {GLOBAL_FAMILIES}")
        self.family = family
        self.gan_loss_kind = gan_loss_kind
        self.discriminator = (
            GlobalDiscriminator(num_classes) if family in _DISCRIMINATOR_INPUT else None
        )

    @property
    def has_discriminator(self) -> bool:
        return self.discriminator is not None

    def _discriminate(self, logits: torch.Tensor) -> torch.Tensor:
        return self.discriminator(represent(logits, _DISCRIMINATOR_INPUT[self.family]))

    def generator_loss(self, target_logits: torch.Tensor) -> torch.Tensor:
        """The term G minimises on a target batch: fool D_g into 'source', or the target entropy."""
        if self.family == "minent":
            return mean_entropy(torch.softmax(target_logits, dim=1))
        if self.family == "none":
            return target_logits.new_zeros(())
        return gan_loss(self._discriminate(target_logits), SOURCE_LABEL, self.gan_loss_kind)

    def discriminator_loss(
        self, source_logits: torch.Tensor, target_logits: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """D_g's loss on detached outputs, each domain's half weighted 0.5 (ADVENT).

        Returns the loss and D_g's mean 'target' output on each domain, for logging.
        """
        d_source = self._discriminate(source_logits.detach())
        d_target = self._discriminate(target_logits.detach())
        loss = 0.5 * gan_loss(d_source, SOURCE_LABEL, self.gan_loss_kind) + 0.5 * gan_loss(
            d_target, TARGET_LABEL, self.gan_loss_kind
        )
        stats = {
            "source": domain_probability(d_source, self.gan_loss_kind).mean().item(),
            "target": domain_probability(d_target, self.gan_loss_kind).mean().item(),
        }
        return loss, stats
