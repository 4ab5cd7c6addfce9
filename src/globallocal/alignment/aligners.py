"""The alignment terms of one adaptation run, composed per head: which terms act on which head, with
their weights (``AlignmentConfig``), and the module that owns every discriminator (``Aligners``).

Every term returns its loss with the statistics to log; ``Aligners`` names them after the term and head
(``loss_adv/global_main``, ``d_acc/local_main_source``, ...) and hands them back to the training loop,
which logs what it is given. Statistics are detached 0-dim tensors on the device (``Stats``): nothing
here reads a value on the host.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from globallocal.alignment.global_alignment import FAMILIES, GlobalAlignment
from globallocal.alignment.local import LocalAlignment, LocalAlignmentConfig
from globallocal.alignment.representations import HeadOutputs

#: Statistics to log, by name: detached 0-dim tensors on the training device (NaN = undefined this step).
Stats = dict[str, torch.Tensor]


@dataclass(frozen=True)
class AlignmentConfig:
    """Which alignment terms act on which head, with their weights (0 switches a term off).

    No defaults: params.yaml is the one source of them (``globallocal.config`` builds this).
    """

    global_family: str
    gan_loss: str
    #: D_g's base width (hidden channels w-2w-4w-8w); ADVENT's is 64.
    global_d_width: int
    #: D_g sees the output map average-pooled over pool x pool pixels; ADVENT's is 1 (the input size).
    global_d_pool: int
    lambda_adv_main: float
    lambda_adv_aux: float
    lambda_ent_main: float
    lambda_ent_aux: float
    lambda_adv_local: float
    lambda_adv_local_aux: float
    #: Iterations over which the global weights ramp linearly from 0 to their value (0 = full from the start).
    global_warmup_iters: int
    local_start_iter: int
    #: Iterations D_l trains alone (from local_start_iter) before the generator feels the local term.
    local_warmup_iters: int
    #: D_l's Adam learning rate; None = the discriminators' common lr_d.
    lr_d_local: float | None
    local: LocalAlignmentConfig

    def global_weight(self, head: str) -> float:
        """The weight of the global term on ``head``: the family's ``<weight_prefix>_<head>`` (0 for ``none``)."""
        prefix = FAMILIES[self.global_family].weight_prefix
        return 0.0 if prefix is None else getattr(self, f"{prefix}_{head}")

    def global_ramp(self, iteration: int) -> float:
        """The share of the global weights applied at 0-based ``iteration``: (iteration + 1) / warm-up, at most 1."""
        if self.global_warmup_iters <= 0:
            return 1.0
        return min(1.0, (iteration + 1) / self.global_warmup_iters)

    def local_weight(self, head: str) -> float:
        return self.lambda_adv_local if head == "main" else self.lambda_adv_local_aux



class Aligners(nn.Module):
    """The alignment terms of one adaptation run, keyed by head; owns every discriminator."""

    def __init__(self, config: AlignmentConfig, num_classes: int, heads: tuple[str, ...]):
        super().__init__()
        self.config = config
        self.global_terms = nn.ModuleDict(
            {
                head: GlobalAlignment(
                    config.global_family, num_classes, config.gan_loss, config.global_d_width, config.global_d_pool
                )
                for head in heads
                if config.global_weight(head) > 0
            }
        )
        self.local_terms = nn.ModuleDict(
            {
                head: LocalAlignment(num_classes, config.local)
                for head in heads
                if config.local_weight(head) > 0
            }
        )

    def local_discriminator_active(self, iteration: int) -> bool:
        return iteration >= self.config.local_start_iter

    def local_generator_active(self, iteration: int) -> bool:
        return iteration >= self.config.local_start_iter + self.config.local_warmup_iters

    def discriminator_param_groups(self, lr_d: float) -> list[dict]:
        """Adam groups: the global discriminators at lr_d, D_l at lr_d_local (as an lr multiplier, so
        the poly schedule of ``set_poly_lr`` applies to both)."""
        lr_local = self.config.lr_d_local if self.config.lr_d_local is not None else lr_d
        groups = [
            {"params": list(self.global_terms.parameters()), "lr_mult": 1.0},
            {"params": list(self.local_terms.parameters()), "lr_mult": lr_local / lr_d},
        ]
        return [{**group, "lr": lr_d * group["lr_mult"]} for group in groups if group["params"]]

    def generator_terms(
        self, target: dict[str, HeadOutputs], iteration: int
    ) -> tuple[dict[str, torch.Tensor], Stats]:
        """The weighted terms G minimises on a target batch, keyed ``global_<head>`` / ``local_<head>``,
        and their unweighted values to log (``loss_adv/<term>``)."""
        terms, stats = {}, {}
        for head, term in self.global_terms.items():
            loss = term.generator_loss(target[head])
            stats[f"loss_adv/global_{head}"] = loss.detach()
            terms[f"global_{head}"] = self.config.global_weight(head) * self.config.global_ramp(iteration) * loss
        if self.local_generator_active(iteration):
            for head, term in self.local_terms.items():
                loss = term.generator_loss(target[head])
                stats[f"loss_adv/local_{head}"] = loss.detach()
                terms[f"local_{head}"] = self.config.local_weight(head) * loss
        return terms, stats

    def discriminator_loss(
        self, source: dict[str, HeadOutputs], labels: torch.Tensor, target: dict[str, HeadOutputs],
        iteration: int,
    ) -> tuple[torch.Tensor | None, Stats]:
        """The sum of every active discriminator's loss (None when none is active) and what to log:
        ``loss_d/<term>`` and each term's statistics named ``<group>/<term>_<statistic>``."""
        losses, stats = [], {}
        for head, term in self.global_terms.items():
            if term.has_discriminator:
                loss, term_stats = term.discriminator_loss(source[head], target[head])
                losses.append(loss)
                stats.update(named_stats(f"global_{head}", loss, term_stats))
        if self.local_discriminator_active(iteration):
            for head, term in self.local_terms.items():
                loss, term_stats = term.discriminator_loss(source[head], labels, target[head])
                losses.append(loss)
                stats.update(named_stats(f"local_{head}", loss, term_stats))
        return (sum(losses) if losses else None), stats


def named_stats(term: str, loss: torch.Tensor, stats: Stats) -> Stats:
    """A discriminator's loss and statistics as log entries: ``loss_d/<term>``, then each statistic
    ``<group>/<statistic>`` a term returns as ``<group>/<term>_<statistic>``."""
    named = {f"loss_d/{term}": loss.detach()}
    for key, value in stats.items():
        group, _, statistic = key.partition("/")
        named[f"{group}/{term}_{statistic}"] = value
    return named
