"""No domain cue outside the outputs: a fresh discriminator trained on IDENTICAL maps, one set shaped as the
source trains and one as the target trains, must stay at chance (docs/fair_game.md).

The maps are street-like layouts (sky over a random horizon, road below, boxes of random classes; smoothed
one-hot logits plus noise), drawn from one distribution for both "domains". Each domain's training view is
what its loader makes of a map: a window of the domain's resized size (``data.source_size`` /
``data.target_size``), then the library's seeded training crop (``data.train_crop``). The discriminators are
the default params.yaml's D_g (family, width, pool) and D_l (local settings), trained with Adam on fresh
views for a few hundred steps, and scored on held-out maps: anything a discriminator learns here is a cue of
the map's shape, never of its content.

On the default (both domains cropped to one size) D_g stays at log 2; with ``train_crop: null`` (the old
default: 108 against 96 rows) the same D_g separates the identical maps almost perfectly, which shows the
test can fail. D_l (per-position, context 1) stays at chance in both.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from globallocal.alignment.global_alignment import GlobalAlignment
from globallocal.alignment.local import LocalAlignment
from globallocal.alignment.representations import HeadOutputs
from globallocal.config import load_validated_params
from globallocal.data.crops import SEED_BOUND, crop_item

REPO = Path(__file__).resolve().parents[2]
K = 19
SKY, ROAD = 10, 0
#: Boxes of random classes per map, and their side ranges in pixels.
BOXES, BOX_HEIGHTS, BOX_WIDTHS = 4, (8, 40), (8, 60)
#: Logit scale of the smoothed one-hot layout (peak probability ~0.96 inside a region) and noise std.
LOGIT_SCALE, NOISE = 6.0, 0.5
SMOOTHING = 7
#: Maps drawn once per bank (views are random windows and crops of them) and held-out views per domain.
TRAIN_MAPS, HELD_OUT_MAPS, HELD_OUT_VIEWS = 32, 12, 24
#: Adam steps and maps per domain per step: D_g (an image-level decision per map) and D_l (a decision per
#: 4x4 cell, some 1000 per map, and 3x a D_g step's cost). Seconds each on a 2-core CPU.
GLOBAL_STEPS, GLOBAL_BATCH = 150, 2
LOCAL_STEPS, LOCAL_BATCH = 100, 1
#: Adam's lr: 10x the default's D_g lr (a stronger D is a stricter test); D_l's default lr is this too.
LR = 1e-3
CHANCE = math.log(2)


def street_logits(n: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """(n, K, height, width) logits of street-like layouts."""
    rows = torch.arange(height).view(1, height, 1)
    horizon = torch.randint(height // 3, 2 * height // 3, (n, 1, 1), generator=generator)
    labels = torch.where(rows < horizon, SKY, ROAD).expand(n, height, width).clone()
    for i in range(n):
        for _ in range(BOXES):
            cls = int(torch.randint(1, K, (), generator=generator))
            h = int(torch.randint(*BOX_HEIGHTS, (), generator=generator))
            w = int(torch.randint(*BOX_WIDTHS, (), generator=generator))
            top = int(torch.randint(0, height - h, (), generator=generator))
            left = int(torch.randint(0, width - w, (), generator=generator))
            labels[i, top:top + h, left:left + w] = cls
    one_hot = F.one_hot(labels, K).permute(0, 3, 1, 2).float()
    smooth = F.avg_pool2d(one_hot, SMOOTHING, 1, SMOOTHING // 2, count_include_pad=False)
    return LOGIT_SCALE * smooth + NOISE * torch.randn(smooth.shape, generator=generator)


class MapBank:
    """``n`` maps at ``canvas_hw`` with their softmax and self-information computed once; ``view`` cuts
    one domain's training view of a random map out of all three."""

    def __init__(self, n: int, canvas_hw: tuple[int, int], generator: torch.Generator):
        logits = street_logits(n, *canvas_hw, generator)
        outputs = HeadOutputs(logits)
        self.tensors = {"logits": logits, "softmax": outputs.prob(),
                        "self_information": outputs.represent("self_information")}

    def view(self, size_wh: tuple[int, int], crop_wh: tuple[int, int] | None, generator: torch.Generator):
        """A random map's (K, h, w) tensors: a random size_wh window, then the seeded training crop."""
        logits = self.tensors["logits"]
        index = int(torch.randint(len(logits), (), generator=generator))
        height, width = logits.shape[-2:]
        top = int(torch.randint(height - size_wh[1] + 1, (), generator=generator))
        left = int(torch.randint(width - size_wh[0] + 1, (), generator=generator))
        window = {key: t[index, :, top:top + size_wh[1], left:left + size_wh[0]] for key, t in self.tensors.items()}
        if crop_wh is None:
            return window
        seed = int(torch.randint(SEED_BOUND, (), generator=generator))
        # crop_item crops "image" (any (C, H, W)); each tensor with the same seed gets the same window.
        return {key: crop_item({"image": t}, crop_wh, seed)["image"] for key, t in window.items()}

    def batch(self, size_wh, crop_wh, n: int, generator: torch.Generator) -> HeadOutputs:
        views = [self.view(size_wh, crop_wh, generator) for _ in range(n)]
        stacked = {key: torch.stack([v[key] for v in views]) for key in views[0]}
        logits = stacked.pop("logits")
        return HeadOutputs(logits, stacked)


def domain_shapes(params) -> tuple[tuple, tuple, tuple | None]:
    """(source size, target size, train crop), each (width, height), as the default's loaders make them."""
    data = params.data
    return data.source_size, data.target_size, data.train_crop


def train_and_score(term, loss_of, params, steps: int, batch: int, crop_override=..., seed: int = 0) -> float:
    """Train ``term``'s discriminator on identical maps shaped as each domain trains; its held-out loss.

    ``loss_of(term, source_outputs, target_outputs) -> loss``. ``crop_override``: a train crop other than
    the params' (None = no crop).
    """
    source_wh, target_wh, crop = domain_shapes(params)
    if crop_override is not ...:
        crop = crop_override
    canvas_hw = (max(source_wh[1], target_wh[1]), max(source_wh[0], target_wh[0]))
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    train_bank = MapBank(TRAIN_MAPS, canvas_hw, generator)
    held_out_bank = MapBank(HELD_OUT_MAPS, canvas_hw, generator)
    optimizer = torch.optim.Adam(term.parameters(), lr=LR, betas=params.train.betas_d)
    for _ in range(steps):
        source = train_bank.batch(source_wh, crop, batch, generator)
        target = train_bank.batch(target_wh, crop, batch, generator)
        optimizer.zero_grad()
        loss_of(term, source, target).backward()
        optimizer.step()
    with torch.no_grad():
        source = held_out_bank.batch(source_wh, crop, HELD_OUT_VIEWS, generator)
        target = held_out_bank.batch(target_wh, crop, HELD_OUT_VIEWS, generator)
        return float(loss_of(term, source, target))


def global_term(params) -> GlobalAlignment:
    a = params.adapt
    return GlobalAlignment(a.global_family, K, a.gan_loss, a.global_d_width, a.global_d_pool)


def global_loss(term, source, target):
    loss, _ = term.discriminator_loss(source, target)
    return loss


def local_loss(term, source, target):
    """D_l's loss with the source's categories read from its own layout (its argmax, as labels would be)."""
    labels = source.logits.argmax(dim=1)
    loss, _ = term.discriminator_loss(source, labels, target)
    return loss


@pytest.fixture(scope="module")
def params():
    return load_validated_params(REPO / "params.yaml")


def test_the_default_trains_both_domains_at_one_size(params):
    source_wh, target_wh, crop = domain_shapes(params)
    assert source_wh != target_wh  # the resized sizes differ (GTA5-like and Cityscapes-like aspects) ...
    assert crop is not None  # ... and both domains are cropped to one size
    assert crop[0] <= min(source_wh[0], target_wh[0]) and crop[1] <= min(source_wh[1], target_wh[1])


def test_global_discriminator_stays_at_chance_on_identical_maps_at_the_default_training_sizes(params):
    loss = train_and_score(global_term(params), global_loss, params, GLOBAL_STEPS, GLOBAL_BATCH)
    assert abs(loss - CHANCE) < 0.03, f"D_g held-out loss {loss:.4f}: it reads the map's shape"


def test_global_discriminator_reads_map_height_without_the_crop(params):
    """The old default (source 108 rows, target 96): the same test, the same D_g, separates identical maps."""
    loss = train_and_score(global_term(params), global_loss, params, GLOBAL_STEPS, GLOBAL_BATCH, crop_override=None)
    assert loss < 0.1, f"D_g held-out loss {loss:.4f}: expected it to read the 108 vs 96 rows"


def local_term(params) -> LocalAlignment:
    return LocalAlignment(K, params.alignment_config().local)


def test_local_discriminator_stays_at_chance_on_identical_maps_at_the_default_training_sizes(params):
    loss = train_and_score(local_term(params), local_loss, params, LOCAL_STEPS, LOCAL_BATCH)
    assert abs(loss - CHANCE) < 0.03, f"D_l held-out loss {loss:.4f}: it reads the map's shape"


@pytest.mark.slow
def test_local_discriminator_stays_at_chance_without_the_crop_too(params):
    """Per position with context 1, D_l cannot see a map's size: at chance on the old default sizes as well."""
    loss = train_and_score(local_term(params), local_loss, params, LOCAL_STEPS, LOCAL_BATCH, crop_override=None)
    assert abs(loss - CHANCE) < 0.03, f"D_l held-out loss {loss:.4f}: it reads the map's shape"
