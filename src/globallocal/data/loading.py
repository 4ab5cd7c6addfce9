"""From dataset kind + root + file list to a shuffled, seeded DataLoader."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from globallocal.data.cityscapes import CityscapesDataset
from globallocal.data.crops import SEED_BOUND
from globallocal.data.gta5 import GTA5Dataset
from globallocal.data.segmentation_dataset import SegmentationDataset
from globallocal.data.synthia import SynthiaDataset
from globallocal.errors import UserError

_SOURCE_DATASETS = {"gta5": GTA5Dataset, "synthia": SynthiaDataset}


@dataclass(frozen=True)
class DataConfig:
    """Where the datasets are and the (width, height) their images are resized to for training; no defaults
    (params.yaml's ``data`` section is the one source, ``Params.data_config`` builds this)."""

    source: str
    source_root: Path
    target_root: Path
    lists_dir: Path
    source_size: tuple[int, int]
    target_size: tuple[int, int]
    #: (width, height) both domains' training images are randomly cropped to (data.crops); None = no crop.
    train_crop: tuple[int, int] | None


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


#: ``num_workers: auto`` never starts more worker processes than this per training process: decoding and
#: resizing a few images per step saturates well before, and every worker holds its own dataset copy.
MAX_AUTO_WORKERS = 8


def resolve_num_workers(value: int | str, processes_per_node: int = 1, device: torch.device | None = None) -> int:
    """``auto`` -> the CPUs this process may use, shared by the node's processes, capped at MAX_AUTO_WORKERS;
    0 when training runs on the CPU (``device``), whose cores the step itself uses (workers would take
    them from it), so that loading stays off the critical path where it can: beside a GPU."""
    if value != "auto":
        return int(value)
    if device is not None and device.type == "cpu":
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cpus // processes_per_node, MAX_AUTO_WORKERS))


class SeededBatchSampler(Sampler[list[int]]):
    """Shuffled batches from a seeded generator; with ``world_size`` ranks, this rank's slice of each.

    Each pass draws what ``DataLoader(shuffle=True, generator=Generator().manual_seed(seed))`` with
    ``num_workers=0`` draws (one int64 — the loader's worker base seed —, the permutation, and the
    permutation ``RandomSampler`` computes and drops when it is exhausted), so a one-rank run keeps the
    order of the loader this replaces; unlike that loader, the order no longer depends on
    ``num_workers`` (persistent workers skip the base-seed draw after the first pass). A global batch of
    ``batch_size`` is split into ``world_size`` contiguous slices of ``batch_size // world_size``.

    Resumable (``data.order.DataStream``): ``pass_start_state`` is the generator state at the start of the
    current pass, and ``restart_at(state, consumed)`` makes the next pass the one that began at ``state``,
    without its first ``consumed`` batches (skipped as index lists: no image is decoded twice).

    ``sample_seeds``: each pass then also draws one seed per item (after the draws above), and a batch is
    a list of ``(index, seed)`` pairs: what ``data.crops.SeededCrops`` reads to crop an item
    reproducibly. The seeds are fixed by the pass's start state, so a resumed pass draws them again.
    Without it nothing more is drawn (the order of a run without crops is unchanged).
    """

    def __init__(self, size: int, batch_size: int, seed: int, drop_last: bool, rank: int = 0, world_size: int = 1,
                 sample_seeds: bool = False):
        if world_size > 1 and size < batch_size:
            raise UserError(
                f"a dataset of {size} images cannot give {world_size} ranks a share of a batch of {batch_size}: "
                "lower train.batch_size or train.nproc_per_node"
            )
        self.size, self.batch_size, self.drop_last = size, batch_size, drop_last
        self.rank, self.world_size = rank, world_size
        self.sample_seeds = sample_seeds
        self.generator = torch.Generator().manual_seed(seed)
        self.pass_start_state: torch.Tensor | None = None
        self._restart: tuple[torch.Tensor, int] | None = None

    def restart_at(self, pass_start_state: torch.Tensor, consumed: int) -> None:
        self._restart = (pass_start_state, consumed)

    def __iter__(self) -> Iterator[list[int]]:
        skip = 0
        if self._restart is not None:
            state, skip = self._restart
            self._restart = None
            self.generator.set_state(state)
        self.pass_start_state = self.generator.get_state()
        for index, batch in enumerate(self._pass()):
            if index >= skip:
                yield batch

    def _pass(self) -> Iterator[list[int]]:
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        order = torch.randperm(self.size, generator=self.generator).tolist()
        torch.randperm(self.size, generator=self.generator)
        if self.sample_seeds:
            seeds = torch.randint(SEED_BOUND, (self.size,), generator=self.generator).tolist()
            order = [(index, seeds[index]) for index in order]
        share = self.batch_size // self.world_size
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            if len(batch) < self.batch_size and self.drop_last:
                return
            yield batch[self.rank * share:(self.rank + 1) * share] if self.world_size > 1 else batch

    def __len__(self) -> int:
        full, rest = divmod(self.size, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)


def ignore_interrupts_in_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: a worker ignores SIGINT. Ctrl-C reaches the terminal's whole process
    group; the training process decides when to stop (after the iteration, with a snapshot:
    globallocal.training.interrupts) and needs its workers' batches until then. Workers still end with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def train_loader(
    dataset: Dataset, batch_size: int, seed: int, num_workers: int, pin_memory: bool = False,
    rank: int = 0, world_size: int = 1,
) -> DataLoader:
    """Shuffled with a seeded generator, full batches only (a batch of 1 would change BN statistics).

    ``batch_size`` is the global batch; with ``world_size`` ranks this rank loads its slice of it. The
    order is the same for any ``num_workers``; workers persist across passes. A dataset with
    ``takes_sample_seed`` (``data.crops.SeededCrops``) is read with ``(index, seed)`` keys drawn per pass.
    """
    drop_last = len(dataset) >= batch_size
    sample_seeds = getattr(dataset, "takes_sample_seed", False)
    return DataLoader(
        dataset,
        batch_sampler=SeededBatchSampler(len(dataset), batch_size, seed, drop_last, rank, world_size, sample_seeds),
        num_workers=num_workers,
        pin_memory=pin_memory,
        # Seeds the workers only (the dataset draws no random numbers); the order has its own generator.
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=num_workers > 0,
        worker_init_fn=ignore_interrupts_in_worker,
    )


class DeviceLoader:
    """Iterate a loader with every tensor already on ``device``, on every device: the one path that
    training takes, so that CPU runs (and CI, which has no GPU) exercise what CUDA runs do.

    On CUDA the loader's batches come from pinned memory and are copied with ``non_blocking=True``, so
    the host goes on queueing work instead of waiting for each copy; on the CPU ``Tensor.to`` returns
    the tensor itself (no copy, bit-identical batches). ``batch_sampler`` is the wrapped loader's, so
    ``data.order.DataStream`` can save and restore the data order through the wrapper.
    """

    def __init__(self, loader: DataLoader, device: torch.device):
        self.loader, self.device = loader, device

    @property
    def batch_sampler(self):
        """The wrapped loader's (resumable) batch sampler."""
        return getattr(self.loader, "batch_sampler", None)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[dict]:
        for batch in self.loader:
            yield {
                key: value.to(self.device, non_blocking=True) if isinstance(value, torch.Tensor) else value
                for key, value in batch.items()
            }
