"""Adversarial losses on discriminator logits, with the domain convention source = 0, target = 1."""

from __future__ import annotations

import torch
import torch.nn.functional as F

SOURCE_LABEL = 0.0
TARGET_LABEL = 1.0
GAN_LOSSES = ("vanilla", "lsgan")
#: A discriminator output at or above this says "target" (for its accuracy in the logs).
DECISION_THRESHOLD = 0.5


def gan_loss(logits: torch.Tensor, domain_label: float, kind: str, reduction: str = "mean") -> torch.Tensor:
    """Loss pushing discriminator ``logits`` (any shape) towards ``domain_label``.

    ``vanilla`` is binary cross-entropy on the logits (AdaptSegNet, ADVENT); ``lsgan`` the squared error of
    the raw output to the label (Mao et al.), as AdaptSegNet's LS-GAN option uses it.
    """
    target = torch.full_like(logits, domain_label)
    if kind == "vanilla":
        return F.binary_cross_entropy_with_logits(logits, target, reduction=reduction)
    if kind == "lsgan":
        return F.mse_loss(logits, target, reduction=reduction)
    raise ValueError(f"unknown GAN loss {kind!r}; expected one of {GAN_LOSSES}")


def domain_probability(logits: torch.Tensor, kind: str) -> torch.Tensor:
    """How 'target' the discriminator finds its input, in [0, 1] for vanilla (sigmoid), raw for lsgan."""
    return torch.sigmoid(logits) if kind == "vanilla" else logits
