"""Ctrl-C and SIGTERM during a training loop: finish the iteration, write a snapshot, stop with one line.

Without this, SIGINT raises KeyboardInterrupt wherever the step happens to be (a 20-line traceback) and
the iterations since the last periodic snapshot are lost; SIGTERM kills the process outright. Inside
``deferred_stop`` the first signal only marks the request; the loop checks it between iterations, writes
a snapshot there and raises ``Interrupted``. A second signal stops at once (KeyboardInterrupt), for a step
that takes too long.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from globallocal.errors import Interrupted

#: The signals a training loop turns into a clean stop.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class StopRequest:
    """``signum``: the signal that asked the loop to stop (None while none has)."""

    signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None


@contextmanager
def deferred_stop(enabled: bool = True) -> Iterator[StopRequest]:
    """While inside, SIGINT / SIGTERM set the yielded request instead of stopping the process (a second one
    stops at once); the previous handlers come back on exit. Not ``enabled`` (a data-parallel rank: the
    ranks would stop at different iterations and wait on each other), or outside the main thread (where
    signals cannot be handled), the signals keep their usual effect and the request stays unset."""
    request = StopRequest()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}

    def handle(signum, frame) -> None:
        if request.requested:
            raise KeyboardInterrupt
        request.signum = signum

    for signum in STOP_SIGNALS:
        signal.signal(signum, handle)
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def interrupted(description: str, signum: int, iteration: int, total: int, snapshot: str | None) -> Interrupted:
    """The one-line stop: which signal, at which iteration, and where ``dvc repro`` goes on from."""
    name = signal.Signals(signum).name
    where = (f"snapshot {snapshot} written; `dvc repro` resumes {description} from iteration {iteration}"
             if snapshot is not None else
             "this run keeps no snapshots (train.snapshot_every 0, self-training or data-parallel); "
             f"`dvc repro` starts {description} over")
    return Interrupted(f"{description}: stopped by {name} after iteration {iteration} of {total}; {where}", signum)

