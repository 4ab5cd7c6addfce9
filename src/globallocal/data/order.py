"""The data order as a position that can be saved and restored, for exact resume after a kill.

A training loader shuffles with one seeded generator and is cycled forever (a new permutation per
pass). Its position is two things: the generator state at the start of the current pass (which fixes
the pass's permutation) and how many batches of the pass training has consumed. Restoring sets the
generator back to that state when the pass's permutation is drawn and skips the consumed batches as
index lists only, so no image is decoded twice and an uninterrupted run draws exactly the random
numbers it always drew (the batch sampler below yields the same batches as ``shuffle=True``).

The DataLoader also draws a worker base seed from the same generator when it opens a pass; we
restore the state *inside* the sampler, after that draw, so resumed passes get the same permutation.
The base seed only seeds worker processes, and no transform here is random, so it changes nothing.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import torch
from torch.utils.data import BatchSampler, RandomSampler, Sampler


class ResumableBatchSampler(Sampler[list[int]]):
    """``BatchSampler(RandomSampler(dataset, generator), batch_size, drop_last)`` that can restart mid-pass.

    Yields exactly the batches a ``DataLoader(shuffle=True, generator=...)`` yields, and records the
    generator state at the start of each pass (``pass_start_state``).
    """

    def __init__(self, num_items: int, batch_size: int, drop_last: bool, generator: torch.Generator):
        self.generator = generator
        self.batches = BatchSampler(RandomSampler(range(num_items), generator=generator), batch_size, drop_last)
        self.pass_start_state: torch.Tensor | None = None
        self._restart: tuple[torch.Tensor, int] | None = None

    def restart_at(self, pass_start_state: torch.Tensor, consumed: int) -> None:
        """Make the next pass the one that began at ``pass_start_state``, without its first ``consumed`` batches."""
        self._restart = (pass_start_state, consumed)

    def __iter__(self) -> Iterator[list[int]]:
        skip = 0
        if self._restart is not None:
            state, skip = self._restart
            self._restart = None
            self.generator.set_state(state)
        self.pass_start_state = self.generator.get_state()
        batches = iter(self.batches)
        for _ in range(skip):
            next(batches, None)  # indices only: skipped batches are never loaded
        yield from batches

    def __len__(self) -> int:
        return len(self.batches)


class DataStream:
    """An endless stream of batches from ``loader``, cycling over its passes (reshuffled each pass).

    With a loader built on a ResumableBatchSampler, ``position()`` / ``restore()`` save and restore
    where the stream is; any other iterable (e.g. a list of batches in tests) just cycles.
    """

    def __init__(self, loader: Iterable):
        self.loader = loader
        self._batches: Iterator | None = None
        self.consumed = 0  # batches taken from the current pass

    def __iter__(self) -> DataStream:
        return self

    def __next__(self):
        while True:
            if self._batches is None:
                self._batches = iter(self.loader)
                self.consumed = 0
            try:
                batch = next(self._batches)
            except StopIteration:
                self._batches = None
                continue
            self.consumed += 1
            return batch

    @property
    def sampler(self) -> ResumableBatchSampler | None:
        sampler = getattr(self.loader, "batch_sampler", None)
        return sampler if isinstance(sampler, ResumableBatchSampler) else None

    def position(self) -> dict:
        """``{"pass_start_state": uint8 tensor or None, "consumed": int}``; plain types for weights-only loading."""
        sampler = self.sampler
        if sampler is None:
            raise TypeError("this loader's data order cannot be saved: build it with data.loading.train_loader")
        started = self._batches is not None
        return {
            "pass_start_state": sampler.pass_start_state.clone() if started else None,
            "consumed": self.consumed if started else 0,
        }

    def restore(self, position: dict) -> None:
        """Continue from a ``position()``: the next batch is the one that followed it."""
        self._batches = None
        self.consumed = 0
        if position["pass_start_state"] is None:
            return  # nothing was drawn yet: the generator state restored with the loader is enough
        sampler = self.sampler
        if sampler is None:
            raise TypeError("this loader's data order cannot be restored: build it with data.loading.train_loader")
        sampler.restart_at(position["pass_start_state"], position["consumed"])
        self._batches = iter(self.loader)
        self.consumed = position["consumed"]
