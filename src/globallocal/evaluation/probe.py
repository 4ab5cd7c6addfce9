"""The mechanism check: can a fresh discriminator tell a final model's source outputs from its target outputs?

For each model the evaluate stage scores, a probe (D_g's architecture, ``evaluate.probe_width``) is trained
from scratch on the model's main-head softmax maps of source train images (label 0) and target dev images
(label 1), as D_g sees them (average-pooled over ``adapt.global_d_pool``), and scored on the held-out half
of each: two folds (even / odd positions), each half trained on once and scored once. Its ROC AUC on the
held-out images (0.5 = the outputs do not tell the domains apart, 1 = perfectly) is the number: alignment
that works lowers it against the weight-0 model. The held-out loss is kept beside it.

No shape cue: both domains' images are cut to one size first (``data.train_crop``, or the smaller of the
two sizes where there is no crop) at offsets seeded by the image's position, so the probe reads the outputs
only (docs/fair_game.md). Deterministic: the probe's initialisation and batches come from ``seed``.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from globallocal.alignment.discriminators import GlobalDiscriminator
from globallocal.alignment.gan_losses import SOURCE_LABEL, TARGET_LABEL
from globallocal.data.crops import crop_item
from globallocal.models.segmentation import upsample

#: Images forwarded at once when the probe's maps are computed.
FORWARD_BATCH = 10
FOLDS = 2
#: Intra-op threads while a probe trains on the CPU.
PROBE_CPU_THREADS = 1


@dataclass(frozen=True)
class ProbeConfig:
    """The probe's training; no defaults (params.yaml: ``evaluate.probe_*``, ``adapt.global_d_pool``, ``seed``)."""

    steps: int
    batch_size: int
    width: int
    lr: float
    pool: int
    seed: int


def common_size(sizes: list[tuple[int, int]], crop: tuple[int, int] | None) -> tuple[int, int]:
    """The (width, height) both domains are cut to: the training crop, else the smallest width and height."""
    if crop is not None:
        return crop
    return min(w for w, _ in sizes), min(h for _, h in sizes)


@torch.no_grad()
def output_maps(model: nn.Module, dataset: Dataset, size_wh: tuple[int, int], pool: int,
                device: torch.device) -> torch.Tensor:
    """(N, K, h / pool, w / pool) main-head softmax maps of every item, each cut to ``size_wh`` (offsets
    seeded by the item's position), on the CPU."""
    model.eval().to(device)
    maps, batch = [], []

    def flush():
        images = torch.stack(batch).to(device)
        _, main = model(images)
        prob = F.softmax(upsample(main.float(), images.shape[-2:]), dim=1)
        maps.append((F.avg_pool2d(prob, pool, ceil_mode=True) if pool > 1 else prob).cpu())
        batch.clear()

    for index in range(len(dataset)):
        batch.append(crop_item({"image": dataset[index]["image"]}, size_wh, seed=index)["image"])
        if len(batch) == FORWARD_BATCH:
            flush()
    if batch:
        flush()
    return torch.cat(maps)


def roc_auc(source_scores: torch.Tensor, target_scores: torch.Tensor) -> float:
    """P(a target score > a source score), ties counting one half (the Mann-Whitney statistic)."""
    diff = target_scores.view(-1, 1) - source_scores.view(1, -1)
    return float(((diff > 0).float() + 0.5 * (diff == 0).float()).mean())


def image_scores(probe: nn.Module, maps: torch.Tensor) -> torch.Tensor:
    """(N,) the probe's mean logit over its output map per image (higher = more target-like)."""
    return probe(maps).float().mean(dim=(1, 2, 3))


@contextmanager
def intra_op_threads(count: int):
    """Run the block with ``count`` intra-op threads (then the previous number again)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def train_probe(source: torch.Tensor, target: torch.Tensor, config: ProbeConfig, fold: int) -> nn.Module:
    """A fresh probe trained with Adam on (N, K, h, w) source (label 0) and target (label 1) maps.

    On the CPU in one thread: its steps are a few milliseconds, and two threads were 4-15x slower than one
    on the shared 2-core machine (the threads wait on each other).
    """
    if source.device.type == "cpu":
        with intra_op_threads(PROBE_CPU_THREADS):
            return _train_probe(source, target, config, fold)
    return _train_probe(source, target, config, fold)


def _train_probe(source: torch.Tensor, target: torch.Tensor, config: ProbeConfig, fold: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed + fold)
        probe = GlobalDiscriminator(source.shape[1], config.width).to(source.device)
    generator = torch.Generator().manual_seed(config.seed + fold)
    optimizer = torch.optim.Adam(probe.parameters(), lr=config.lr)
    for _ in range(config.steps):
        picks = [torch.randint(len(maps), (config.batch_size,), generator=generator) for maps in (source, target)]
        loss = probe_loss(probe, source[picks[0]], target[picks[1]])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return probe.eval()


def probe_loss(probe: nn.Module, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on the probe's per-image logits, each domain's half weighted 0.5."""
    s, t = image_scores(probe, source), image_scores(probe, target)
    return 0.5 * F.binary_cross_entropy_with_logits(s, torch.full_like(s, SOURCE_LABEL)) + \
        0.5 * F.binary_cross_entropy_with_logits(t, torch.full_like(t, TARGET_LABEL))


def domain_probe(source: torch.Tensor, target: torch.Tensor, config: ProbeConfig) -> dict:
    """Two folds over (N, K, h, w) source and target maps: train on one half (even or odd positions),
    score the other. Returns ``{"auc": mean held-out AUC, "held_out_loss": mean, "folds": [...]}``."""
    folds = []
    for fold in range(FOLDS):
        train_part, test_part = slice(fold, None, FOLDS), slice(1 - fold, None, FOLDS)
        probe = train_probe(source[train_part], target[train_part], config, fold)
        with torch.no_grad():
            held_source, held_target = source[test_part], target[test_part]
            auc = roc_auc(image_scores(probe, held_source), image_scores(probe, held_target))
            loss = float(probe_loss(probe, held_source, held_target))
        folds.append({"auc": auc, "held_out_loss": loss, "held_out_images": [len(held_source), len(held_target)]})
    return {
        "auc": sum(f["auc"] for f in folds) / FOLDS,
        "held_out_loss": sum(f["held_out_loss"] for f in folds) / FOLDS,
        "folds": folds,
    }
