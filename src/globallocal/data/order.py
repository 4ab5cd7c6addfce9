"""The data order as a position that can be saved and restored, for exact resume after a kill.

A training loader shuffles with one seeded generator and is cycled forever (a new permutation per
pass). Its position is two things: the generator state at the start of the current pass (which fixes
the pass's permutation) and how many batches of the pass training has consumed. Restoring sets the
generator back to that state when the pass's permutation is drawn and skips the consumed batches as
index lists only, so no image is decoded twice and an uninterrupted run draws exactly the random
numbers it always drew. The batch sampler is ``data.loading.SeededBatchSampler``: it owns its
generator and draws per pass what ``DataLoader(shuffle=True)`` drew, so restoring that generator's
state at the pass start reproduces the pass (and, with several ranks, each rank's slice of it).
"""

from __future__ import annotations

from typing import Iterable, Iterator

import torch


class DataStream:
    """An endless stream of batches from ``loader``, cycling over its passes (reshuffled each pass).

    With a loader built by ``data.loading.train_loader`` (a resumable batch sampler), ``position()`` / ``restore()`` save and restore
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
    def sampler(self):
        """The loader's resumable batch sampler (``data.loading.SeededBatchSampler``), or None."""
        sampler = getattr(self.loader, "batch_sampler", None)
        return sampler if hasattr(sampler, "restart_at") else None

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
