"""Seeded random crops of training items to one size in both domains (``data.train_crop``).

Why: the source is resized to ``data.source_size`` and the target to ``data.target_size``. When the two
differ (the embedded default: 192x108 against 192x96), every map a discriminator sees says which domain
it came from by its height alone, and an image-level D_g reads that cue instead of the outputs
(docs/fair_game.md). Cropping both domains' training items to one size removes it; evaluation keeps
full images.

Reproducible and resumable: the crop of an item is drawn from its own generator, seeded with a number
the batch sampler draws for it at the start of each pass (``data.loading.SeededBatchSampler`` with
``sample_seeds``), never from global RNG state. A pass is fully fixed by the sampler's generator state
at its start, which ``data.order.DataStream`` saves in every snapshot, so a resumed run crops each item
as the uninterrupted run did, and the crops do not depend on ``num_workers``.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from globallocal.errors import UserError

#: The item keys cropped with the image: (H, W) label maps (source labels, target labels, pseudo-labels).
LABEL_KEYS = ("label", "pseudo_label")
#: Seeds drawn per item are in [0, SEED_BOUND).
SEED_BOUND = 2 ** 62


def crop_offsets(height: int, width: int, crop_wh: tuple[int, int], seed: int) -> tuple[int, int]:
    """(top, left) of a ``crop_wh`` (width, height) window inside a height x width map, uniform over the
    valid positions, drawn from a generator seeded with ``seed`` alone (0 where the crop spans a side)."""
    crop_w, crop_h = crop_wh
    if crop_w > width or crop_h > height:
        raise UserError(
            f"params key 'data.train_crop' is [{crop_w}, {crop_h}] but a training image is {width}x{height}: "
            "the crop must fit inside data.source_size and data.target_size; lower data.train_crop"
        )
    generator = torch.Generator().manual_seed(int(seed))
    top = int(torch.randint(height - crop_h + 1, (), generator=generator))
    left = int(torch.randint(width - crop_w + 1, (), generator=generator))
    return top, left


def crop_item(item: dict, crop_wh: tuple[int, int], seed: int) -> dict:
    """``item`` with its (3, H, W) ``image`` and every (H, W) map of LABEL_KEYS cut to the same
    (3, h, w) / (h, w) window (``crop_wh`` = (w, h)) at seeded offsets; other keys unchanged."""
    height, width = item["image"].shape[-2:]
    top, left = crop_offsets(height, width, crop_wh, seed)
    crop_w, crop_h = crop_wh
    window = (slice(top, top + crop_h), slice(left, left + crop_w))
    cropped = dict(item)
    cropped["image"] = item["image"][..., window[0], window[1]].contiguous()
    for key in LABEL_KEYS:
        if key in item:
            label = item[key]
            if label.shape[-2:] != (height, width):
                raise ValueError(f"item key {key!r} is {tuple(label.shape[-2:])}, its image {(height, width)}")
            cropped[key] = label[..., window[0], window[1]].contiguous()
    return cropped


class SeededCrops(Dataset):
    """``dataset``'s items cropped to ``crop_wh`` (width, height); read with keys ``(index, seed)``.

    The seed comes from the batch sampler (``train_loader`` passes ``sample_seeds`` when a dataset has
    ``takes_sample_seed``); the same (index, seed) always gives the same crop.
    """

    takes_sample_seed = True

    def __init__(self, dataset: Dataset, crop_wh: tuple[int, int]):
        self.dataset = dataset
        self.crop_wh = (int(crop_wh[0]), int(crop_wh[1]))
        self.names = getattr(dataset, "names", None)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        index, seed = key
        return crop_item(self.dataset[index], self.crop_wh, seed)


def training_crops(dataset: Dataset, crop_wh: tuple[int, int] | None) -> Dataset:
    """``dataset`` cropped to ``crop_wh`` as training reads it, or unchanged when ``crop_wh`` is None."""
    return dataset if crop_wh is None else SeededCrops(dataset, crop_wh)
