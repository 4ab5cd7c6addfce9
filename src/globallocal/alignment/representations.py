"""What an alignment term looks at: the softmax output or its weighted self-information."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: Added inside log2 so that p = 0 gives 0 * log2(eps) = 0 rather than NaN.
LOG_EPS = 1e-30

REPRESENTATIONS = ("softmax", "self_information")


def self_information(prob: torch.Tensor) -> torch.Tensor:
    """Weighted self-information map (ADVENT): ``-p * log2(p) / log2(K)``.

    prob: (N, K, H, W) probabilities. Returns (N, K, H, W); its sum over K is the entropy in [0, 1].
    """
    num_classes = prob.shape[1]
    return -prob * torch.log2(prob + LOG_EPS) / math.log2(num_classes)


def mean_entropy(prob: torch.Tensor) -> torch.Tensor:
    """Mean normalised entropy of (N, K, H, W) probabilities: a scalar in [0, 1] (ADVENT's MinEnt)."""
    return self_information(prob).sum(dim=1).mean()


def represent(logits: torch.Tensor, kind: str) -> torch.Tensor:
    """(N, K, H, W) logits -> the (N, K, H, W) map a discriminator sees: softmax or self-information."""
    prob = F.softmax(logits, dim=1)
    if kind == "softmax":
        return prob
    if kind == "self_information":
        return self_information(prob)
    raise ValueError(f"unknown representation {kind!r}; expected one of {REPRESENTATIONS}")
