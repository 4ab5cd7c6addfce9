"""Interval means of the per-iteration training statistics, accumulated where they are computed.

A training step returns its statistics as detached 0-dim tensors on the training device (the learning
rates, computed on the host, as Python floats). Reading a CUDA tensor on the host (``.item()``) waits
for every kernel queued before it, so reading each statistic at each iteration would stall the GPU a
dozen times per step. ``RunningMeans`` only queues additions; the values cross to the host once per
logging interval (``means``), and before a snapshot.

The arithmetic is exactly what reading every value and summing Python floats gives: each value is
widened to float64 and added, in iteration order, to a float64 sum that starts at 0; the mean is that
sum divided by the count on the host. A NaN value (a statistic undefined at that iteration, e.g. D_l's
accuracy on a domain where no local output was kept) enters neither the sum nor the count, so a mean
is over the iterations where the statistic was defined, and a statistic undefined over a whole
interval is left out of that interval's means. Keys come out in the order they were first defined.

It also remembers the first non-finite value of a loss (a key starting with ``loss``), with its
iteration, so the loop can stop with the error an iteration-by-iteration check would have given.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

#: Statistics whose non-finite value stops training.
LOSS_PREFIX = "loss"


@dataclass(frozen=True)
class NonFiniteLoss:
    """The first non-finite loss seen: its key, value and the iteration count after its step."""

    key: str
    value: float
    iteration: int


@dataclass(frozen=True)
class _Layout:
    """Where one step's tensor statistics go, cached per set of keys (building index tensors on a
    device copies from the host, so it happens once per layout, not per step)."""

    tensor_keys: tuple[str, ...]
    slots: torch.Tensor  # (n,) long: each tensor key's slot in the device vectors
    positions: torch.Tensor  # (n,) long: each tensor key's position in the step's statistics
    is_loss: torch.Tensor  # (n,) bool


class RunningMeans:
    """Running float64 sums and counts per statistic; floats on the host, tensors on their device.

    Device vectors, one slot per tensor key: ``sums`` (float64), ``counts`` and ``first`` (int64: the
    event number at which the key was first defined this interval, -1 before), ``bad_event`` and
    ``bad_value`` (the first non-finite loss value, -1 / 0 before). An event is one (iteration, key)
    entry, numbered in order since the object was made.
    """

    def __init__(self) -> None:
        self._slots: dict[str, int] = {}
        self._layouts: dict[tuple[str, ...], _Layout] = {}
        self._device: torch.device | None = None
        self._sums = self._counts = self._first = self._bad_event = self._bad_value = None
        self._host_sums: dict[str, float] = {}
        self._host_counts: dict[str, int] = {}
        self._host_first: dict[str, int] = {}
        #: Sums and counts restored from a snapshot (``load``), moved into place when their key is next added.
        self._pending: dict[str, tuple[float, int, int]] = {}
        self._events = 0
        #: (first event of an ``add``, its iteration), to name the iteration of a non-finite loss.
        self._steps: list[tuple[int, int]] = []

    # ---- adding (no host read) -----------------------------------------------------------------

    def add(self, stats: Mapping[str, torch.Tensor | float], iteration: int) -> None:
        """Add one iteration's statistics: 0-dim tensors (all on one device) or floats.

        ``iteration``: the number of steps done after this one (what an error message names).
        """
        base = self._events
        self._events += len(stats)
        self._steps.append((base, iteration))
        for position, (key, value) in enumerate(stats.items()):
            if isinstance(value, torch.Tensor):
                continue
            if key in self._pending:
                self._host_sums[key], self._host_counts[key], self._host_first[key] = self._pending.pop(key)
            if not math.isnan(value):
                self._host_sums[key] = self._host_sums.get(key, 0.0) + value
                self._host_counts[key] = self._host_counts.get(key, 0) + 1
                self._host_first.setdefault(key, base + position)
        tensors = [value for value in stats.values() if isinstance(value, torch.Tensor)]
        if not tensors:
            return
        layout = self._layout(tuple(stats), stats, tensors[0].device)
        values = torch.stack(tensors).detach().double()  # (n,) in one kernel; stack promotes dtypes
        defined = ~values.isnan()
        self._sums.index_add_(0, layout.slots, torch.where(defined, values, 0.0))
        self._counts.index_add_(0, layout.slots, defined.long())
        events = layout.positions + base
        first = self._first[layout.slots]
        self._first.index_copy_(0, layout.slots, torch.where((first < 0) & defined, events, first))
        bad_event = self._bad_event[layout.slots]
        newly_bad = layout.is_loss & ~values.isfinite() & (bad_event < 0)
        self._bad_event.index_copy_(0, layout.slots, torch.where(newly_bad, events, bad_event))
        self._bad_value.index_copy_(0, layout.slots, torch.where(newly_bad, values, self._bad_value[layout.slots]))

    def _layout(self, keys: tuple[str, ...], stats: Mapping, device: torch.device) -> _Layout:
        layout = self._layouts.get(keys)
        if layout is not None:
            return layout
        if self._device is None:
            self._device = device
            self._sums = torch.zeros(0, dtype=torch.float64, device=device)
            self._counts = torch.zeros(0, dtype=torch.int64, device=device)
            self._first = torch.zeros(0, dtype=torch.int64, device=device)
            self._bad_event = torch.zeros(0, dtype=torch.int64, device=device)
            self._bad_value = torch.zeros(0, dtype=torch.float64, device=device)
        tensor_keys = tuple(key for key in keys if isinstance(stats[key], torch.Tensor))
        new = [key for key in tensor_keys if key not in self._slots]
        for key in new:
            self._slots[key] = len(self._slots)
        if new:
            grow = len(new)
            # A key restored from a snapshot continues its sum: the same additions in the same order.
            restored = [self._pending.pop(key, (0.0, 0, -1)) for key in new]
            self._sums = torch.cat([self._sums, self._sums.new_tensor([total for total, _, _ in restored])])
            self._counts = torch.cat([self._counts, self._counts.new_tensor([count for _, count, _ in restored])])
            self._first = torch.cat([self._first, self._first.new_tensor([first for _, _, first in restored])])
            self._bad_event = torch.cat([self._bad_event, self._bad_event.new_full((grow,), -1)])
            self._bad_value = torch.cat([self._bad_value, self._bad_value.new_zeros(grow)])
        layout = _Layout(
            tensor_keys,
            torch.tensor([self._slots[key] for key in tensor_keys], dtype=torch.int64, device=self._device),
            torch.tensor([keys.index(key) for key in tensor_keys], dtype=torch.int64, device=self._device),
            torch.tensor([key.startswith(LOSS_PREFIX) for key in tensor_keys], device=self._device),
        )
        self._layouts[keys] = layout
        return layout

    # ---- reading (one host read) ---------------------------------------------------------------

    def _read(self) -> dict[str, tuple[float, int, int, int, float]]:
        """Per tensor key: (sum, count, first event, bad event, bad value), in one device-to-host copy."""
        if self._device is None or not self._slots:
            return {}
        table = torch.stack([self._sums, self._counts.double(), self._first.double(), self._bad_event.double(),
                             self._bad_value]).cpu().tolist()
        return {key: (table[0][slot], int(table[1][slot]), int(table[2][slot]), int(table[3][slot]),
                      table[4][slot]) for key, slot in self._slots.items()}

    def read(self) -> tuple[dict[str, float], dict[str, int], NonFiniteLoss | None]:
        """The interval's sums and counts (keys defined at least once, in first-defined order) and the
        first non-finite loss since the last ``read`` (None if there was none), which is then forgotten."""
        device = self._read()
        first = dict(self._host_first)
        sums, counts = dict(self._host_sums), dict(self._host_counts)
        for key, (total, count, first_event) in self._pending.items():
            sums[key], counts[key], first[key] = total, count, first_event
        for key, (total, count, first_event, _, _) in device.items():
            if count > 0:
                sums[key], counts[key], first[key] = total, count, first_event
        order = sorted(sums, key=first.__getitem__)
        bad = min(((event, key, value) for key, (_, _, _, event, value) in device.items() if event >= 0), default=None)
        non_finite = None
        if bad is not None:
            event, key, value = bad
            starts = [start for start, _ in self._steps]
            non_finite = NonFiniteLoss(key, value, self._steps[bisect.bisect_right(starts, event) - 1][1])
        self._steps = []
        if self._device is not None:
            self._bad_event.fill_(-1)
        return {key: sums[key] for key in order}, {key: counts[key] for key in order}, non_finite

    def means(self) -> dict[str, float]:
        """The interval's means: sum / count per key, in first-defined order (one host read)."""
        sums, counts, _ = self.read()
        return {key: sums[key] / counts[key] for key in sums}

    # ---- intervals and snapshots ---------------------------------------------------------------

    def clear(self) -> None:
        """Start a new interval (non-finite losses not yet read are kept)."""
        self._host_sums.clear()
        self._host_counts.clear()
        self._host_first.clear()
        self._pending.clear()
        if self._device is not None:
            self._sums.zero_()
            self._counts.zero_()
            self._first.fill_(-1)

    def load(self, sums: Mapping[str, float], counts: Mapping[str, int]) -> None:
        """Continue an interval from a snapshot's sums and counts (keys in first-defined order); only
        before the first ``add``."""
        if self._events:
            raise RuntimeError("RunningMeans.load after values were added")
        self.clear()
        for key, total in sums.items():
            self._pending[key] = (total, counts[key], self._events)
            self._events += 1
