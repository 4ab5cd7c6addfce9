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


class HeadOutputs:
    """One head's (N, K, H, W) logits with their softmax and representations, each computed once.

    The G step and the D step of an iteration look at the same target logits (through several terms:
    global D, local D, pseudo-labels); computing softmax and self-information once per head and
    sharing the detached copies with the D step avoids repeating that work.
    """

    def __init__(self, logits: torch.Tensor, cache: dict[str, torch.Tensor] | None = None):
        self.logits = logits
        self._cache = {} if cache is None else cache

    def prob(self) -> torch.Tensor:
        """(N, K, H, W) softmax over classes, in float32 whatever precision produced the logits."""
        if "softmax" not in self._cache:
            self._cache["softmax"] = F.softmax(self.logits.float(), dim=1)
        return self._cache["softmax"]

    def represent(self, kind: str) -> torch.Tensor:
        """The (N, K, H, W) map a discriminator sees: ``softmax`` or ``self_information``."""
        if kind == "softmax":
            return self.prob()
        if kind != "self_information":
            raise ValueError(f"unknown representation {kind!r}; expected one of {REPRESENTATIONS}")
        if kind not in self._cache:
            self._cache[kind] = self_information(self.prob())
        return self._cache[kind]

    def detach(self) -> HeadOutputs:
        """The same outputs cut from the graph (for the discriminators' step), sharing what was computed."""
        return HeadOutputs(self.logits.detach(), {key: value.detach() for key, value in self._cache.items()})


def as_outputs(x: torch.Tensor | HeadOutputs) -> HeadOutputs:
    """Accept raw (N, K, H, W) logits or HeadOutputs wherever an alignment term reads a head."""
    return x if isinstance(x, HeadOutputs) else HeadOutputs(x)
