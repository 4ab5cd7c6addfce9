"""The discriminators' logged statistics say how well they separate the domains, not only on which side
of 0.5 they fall: per-domain loss and mean P(target) beside the accuracy."""

import math

import torch
from torch import nn

from globallocal.alignment.global_alignment import GlobalAlignment
from globallocal.alignment.local import LocalAlignment
from support.configs import local_config

K = 4


class Thresholded(nn.Module):
    """A stand-in D_g: logit = scale x (the map's largest value - 0.6). Target maps below are one-hot
    (largest value 1), source maps uniform (1/K), so every decision is right; ``scale`` sets how sure."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return self.scale * (x.amax(dim=(1, 2, 3), keepdim=True) - 0.6)


def stats_of(scale: float):
    term = GlobalAlignment("adaptsegnet", K, "vanilla", d_width=8)
    term.discriminator = Thresholded(scale)
    source, target = torch.zeros(2, K, 8, 8), torch.zeros(2, K, 8, 8)
    target[:, 0] = 50.0
    return term.discriminator_loss(source, target)


def test_a_barely_separating_global_discriminator_reads_as_chance_in_loss_and_output():
    """P(target) 0.4991 on source, 0.5010 on target: accuracy 1.0, loss and output at chance."""
    loss, stats = stats_of(scale=0.004)
    assert stats["d_acc/source"] == 1.0 and stats["d_acc/target"] == 1.0
    for domain in ("source", "target"):
        assert abs(float(stats[f"d_loss/{domain}"]) - math.log(2)) < 2e-3
        assert abs(float(stats[f"d_out/{domain}"]) - 0.5) < 2e-3
    assert torch.allclose(loss, 0.5 * stats["d_loss/source"] + 0.5 * stats["d_loss/target"])


def test_a_separating_global_discriminator_shows_it_in_every_statistic():
    _, stats = stats_of(scale=40.0)
    assert stats["d_acc/source"] == 1.0 and stats["d_acc/target"] == 1.0
    assert float(stats["d_loss/source"]) < 1e-5 and float(stats["d_loss/target"]) < 1e-5
    assert float(stats["d_out/source"]) < 1e-5 and float(stats["d_out/target"]) > 1 - 1e-5


def test_the_local_discriminator_logs_its_loss_per_domain_and_nan_where_nothing_is_kept():
    torch.manual_seed(0)
    term = LocalAlignment(K, local_config(conf_threshold=1.0, conf_filter="target"))  # no target output kept
    logits = torch.randn(2, K, 8, 8)
    labels = torch.randint(0, K, (2, 8, 8))
    loss, stats = term.discriminator_loss(logits, labels, logits)
    assert math.isnan(float(stats["d_loss/target"])) and math.isnan(float(stats["d_out/target"]))
    assert 0 < float(stats["d_loss/source"]) and torch.allclose(loss, 0.5 * stats["d_loss/source"])
