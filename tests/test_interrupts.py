"""Ctrl-C and SIGTERM around a training loop: handlers only where a clean stop is possible, workers left alone."""

import signal

import torch

from globallocal.data.loading import train_loader
from globallocal.training.interrupts import deferred_stop


class SigintHandlerOfTheWorker:
    """Items report whether the process that loads them ignores SIGINT."""

    def __len__(self):
        return 2

    def __getitem__(self, index):
        return {"ignores_sigint": torch.tensor(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)}


def test_loader_workers_ignore_ctrl_c_so_that_the_training_process_decides_when_to_stop():
    # Python's own Ctrl-C handler in the training process, whatever this test was started with (a shell that
    # starts a command in the background hands it SIGINT already ignored, which the workers would inherit).
    started_with = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        batch = next(iter(train_loader(SigintHandlerOfTheWorker(), 2, seed=0, num_workers=1)))
        assert batch["ignores_sigint"].tolist() == [True, True]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the training process keeps its own
    finally:
        signal.signal(signal.SIGINT, started_with)


def test_the_handlers_are_installed_only_while_enabled_and_restored_after():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with deferred_stop(enabled=False) as request:
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert not request.requested
    with deferred_stop() as request:
        assert signal.getsignal(signal.SIGINT) not in before and signal.getsignal(signal.SIGTERM) not in before
        signal.raise_signal(signal.SIGTERM)
        assert request.signum == signal.SIGTERM
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
