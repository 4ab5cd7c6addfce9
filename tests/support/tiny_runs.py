"""A tiny adapt run (TinySegmenter on 7 squares, 6 iterations, every alignment term on) for the snapshot,
resume and loader-path tests: its data, configuration, snapshots and final weights."""

import pytest
import torch

from globallocal.data.loading import train_loader
from globallocal.training import loop as training
from globallocal.training.loop import RunOptions, build_train_state, train
from globallocal.training.snapshots import SnapshotConfig, Snapshots, fingerprint
from support.configs import alignment_config, local_config, optim_config, train_config
from support.tiny_models import K, TinySegmenter

ITERATIONS = 6
CPU = torch.device("cpu")
#: D_g's width in these runs: 8 instead of ADVENT's 64 keeps each snapshot ~45x smaller (0.1 M parameters
#: instead of 5.6 M, optimiser states included) and the run ~3x faster; what is checked (bit-identical
#: resume of every weight and optimiser state) does not depend on the width.
GLOBAL_D_WIDTH = 8


class Squares:
    """7 items of (3, 32, 32) images (target-like when ``labelled`` is False); item ``nan_item`` is all NaN."""

    def __init__(self, labelled=True, nan_item=None):
        self.labelled, self.nan_item = labelled, nan_item

    def __len__(self):
        return 7

    def __getitem__(self, index):
        g = torch.Generator().manual_seed(index + (0 if self.labelled else 100))
        item = {"image": torch.randn(3, 32, 32, generator=g)}
        if index == self.nan_item:
            item["image"] = torch.full((3, 32, 32), float("nan"))
        if self.labelled:
            item["label"] = torch.randint(0, K, (32, 32), generator=g)
        return item


def adapt_config():
    alignment = alignment_config(local=local_config(conf_threshold=0.0), global_d_width=GLOBAL_D_WIDTH)
    return train_config(optim=optim_config(iterations=ITERATIONS, max_iters=ITERATIONS, lr=0.01), alignment=alignment,
                        log_every=4)


def fresh_run(nan_item=None):
    """What a stage builds before training: seeded model, discriminators, loaders."""
    torch.manual_seed(0)
    state = build_train_state(TinySegmenter(), adapt_config(), K)
    loaders = (train_loader(Squares(nan_item=nan_item), 2, 0, 0), train_loader(Squares(False), 2, 1, 0))
    return state, loaders


def snapshots_in(folder, every=2, keep=2, **fingerprint_parts):
    return Snapshots(folder, fingerprint(config=adapt_config(), **fingerprint_parts), SnapshotConfig(every, keep))


def weights(state):
    """Every tensor of the segmenter and the discriminators, by name."""
    return {**state.model.state_dict(), **{f"d.{k}": v for k, v in state.aligners.state_dict().items()}}


def uninterrupted_weights():
    """The weights after the whole run on plain loaders, without snapshots."""
    state, (source, target) = fresh_run()
    train(state, adapt_config(), source, target, CPU, RunOptions(progress=False))
    return weights(state)


class Killed(Exception):
    pass


def killing_step_before(kill_before):
    """``training.train_step`` that raises Killed instead of running iteration ``kill_before``."""
    step = training.train_step

    def killing_step(state, *args):
        if state.iteration + 1 == kill_before:
            raise Killed
        return step(state, *args)

    return killing_step


def train_until_killed(state, loaders, snapshots, kill_before, monkeypatch):
    """Train ``state`` until just before iteration ``kill_before`` runs, as a kill would stop it."""
    source, target = loaders
    with monkeypatch.context() as patch:
        patch.setattr(training, "train_step", killing_step_before(kill_before))
        with pytest.raises(Killed):
            train(state, adapt_config(), source, target, CPU, RunOptions(progress=False, snapshots=snapshots))
