"""From dataset kind + root + file list to a shuffled, seeded DataLoader."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from globallocal.data.cityscapes import CityscapesDataset
from globallocal.data.gta5 import GTA5Dataset
from globallocal.data.order import ResumableBatchSampler
from globallocal.data.segmentation_dataset import SegmentationDataset
from globallocal.data.synthia import SynthiaDataset

_SOURCE_DATASETS = {"gta5": GTA5Dataset, "synthia": SynthiaDataset}


def source_dataset(
    kind: str, root: Path, names: list[str], image_size: tuple[int, int], normalization: str
) -> SegmentationDataset:
    """The labelled source set (``gta5`` or ``synthia`` layout), resized to ``image_size`` (width, height)."""
    return _SOURCE_DATASETS[kind](root, names, image_size=image_size, normalization=normalization)


def target_dataset(
    root: Path,
    split: str,
    names: list[str],
    image_size: tuple[int, int],
    normalization: str,
    with_labels: bool,
    resize_label: bool = True,
) -> CityscapesDataset:
    """A Cityscapes-layout split; for evaluation pass ``resize_label=False`` to score at native resolution."""
    return CityscapesDataset(
        root, split, names, image_size=image_size, normalization=normalization,
        with_labels=with_labels, resize_label=resize_label,
    )


def train_loader(dataset: Dataset, batch_size: int, seed: int, num_workers: int) -> DataLoader:
    """Shuffled with a seeded generator, full batches only (a batch of 1 would change BN statistics).

    The same batches as ``shuffle=True``, through a sampler whose position can be saved (data.order).
    """
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_sampler=ResumableBatchSampler(len(dataset), batch_size, len(dataset) >= batch_size, generator),
        num_workers=num_workers,
        generator=generator,
        persistent_workers=num_workers > 0,
    )
