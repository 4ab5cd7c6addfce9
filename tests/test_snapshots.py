"""Snapshots and the data order's position: exact resume, damaged snapshots, fingerprints, NaN losses."""

import itertools
import os
import signal

import pytest
import torch

from globallocal.data.loading import train_loader
from globallocal.data.order import DataStream
from globallocal.errors import Interrupted, UserError
from globallocal.training import loop as training
from globallocal.training.loop import RunOptions, train
from globallocal.training.snapshots import STATE_FILE, capture
from support.tiny_runs import (
    CPU,
    ITERATIONS,
    adapt_config,
    fresh_run,
    snapshots_in,
    train_until_killed,
    weights,
)


def run_until_killed(snapshots, kill_before, monkeypatch):
    """A fresh run trained until just before iteration ``kill_before`` runs, as a kill would stop it."""
    state, loaders = fresh_run()
    train_until_killed(state, loaders, snapshots, kill_before, monkeypatch)


def resumed_weights(snapshots):
    state, (source, target) = fresh_run()
    train(state, adapt_config(), source, target, CPU, RunOptions(progress=False, snapshots=snapshots,
          resume=snapshots.load("adapted")))
    return weights(state)


@pytest.mark.parametrize("kill_before", range(3, ITERATIONS + 1))
def test_resuming_after_a_kill_at_any_iteration_gives_bit_identical_weights(
    kill_before, uninterrupted_adapt_weights, tmp_path, monkeypatch, capsys
):
    snapshots = snapshots_in(tmp_path)
    run_until_killed(snapshots, kill_before, monkeypatch)
    result = resumed_weights(snapshots)
    newest = (kill_before - 1) // 2 * 2
    assert f"resuming from snapshot {tmp_path}/iter_{newest:08d} (iteration {newest})" in capsys.readouterr().out
    assert result.keys() == uninterrupted_adapt_weights.keys()
    assert all(torch.equal(result[key], uninterrupted_adapt_weights[key]) for key in uninterrupted_adapt_weights)


def test_a_damaged_newest_snapshot_falls_back_to_the_one_before(
    uninterrupted_adapt_weights, tmp_path, monkeypatch, capsys
):
    snapshots = snapshots_in(tmp_path)
    run_until_killed(snapshots, 6, monkeypatch)  # snapshots 2 and 4
    state_file = tmp_path / f"iter_00000004/{STATE_FILE}"
    state_file.write_bytes(state_file.read_bytes()[:1000])

    result = resumed_weights(snapshots)

    out = capsys.readouterr().out
    assert f"snapshot {tmp_path}/iter_00000004 is damaged" in out
    assert f"resuming from snapshot {tmp_path}/iter_00000002 (iteration 2)" in out
    assert all(torch.equal(result[key], uninterrupted_adapt_weights[key]) for key in uninterrupted_adapt_weights)


def test_a_snapshot_made_under_other_settings_is_never_resumed(tmp_path, monkeypatch, capsys):
    run_until_killed(snapshots_in(tmp_path, code="aaaa"), 6, monkeypatch)
    changed = snapshots_in(tmp_path, code="bbbb")

    assert changed.load("adapted") is None
    line = capsys.readouterr().out.strip()
    assert line == (f"adapted: not resuming from {tmp_path}/iter_00000004, it was made under other settings "
                    "(code: 'aaaa' -> 'bbbb'); starting over")
    assert changed.existing() == []


def test_only_the_newest_snapshots_are_kept_and_partial_writes_are_not_snapshots(tmp_path, monkeypatch):
    snapshots = snapshots_in(tmp_path, every=1, keep=2)
    run_until_killed(snapshots, 6, monkeypatch)
    (tmp_path / "iter_00000009.tmp").mkdir()  # a write that was killed
    assert [path.name for path in snapshots.existing()] == ["iter_00000005", "iter_00000004"]


def test_a_snapshot_holds_weights_optimisers_rngs_and_data_position(tmp_path):
    state, (source, target) = fresh_run()
    sources = DataStream(source)
    next(sources)
    payload = capture(state, {"source": sources, "target": None}, {"sums": {}})
    assert {"iteration", "model", "optimizer", "discriminators", "optimizer_d", "rng", "streams"} <= set(payload)
    assert set(payload["rng"]) >= {"python", "numpy", "torch"}
    assert payload["streams"]["source"]["consumed"] == 1
    torch.save(payload, tmp_path / "s.pt")
    torch.load(tmp_path / "s.pt", weights_only=True)  # plain types only


def test_a_nan_loss_stops_training_naming_the_iteration_and_term_and_keeps_the_last_snapshot(tmp_path):
    order = [batch.tolist() for batch in itertools.islice(DataStream(train_loader(list(range(7)), 2, 0, 0)), 6)]
    first_seen = {item: next(i for i, batch in enumerate(order, start=1) if item in batch) for item in order[-1]}
    nan_item, nan_iteration = max(first_seen.items(), key=lambda pair: pair[1])  # seen first after a snapshot
    assert nan_iteration > 1
    state, (source, target) = fresh_run(nan_item=nan_item)
    snapshots = snapshots_in(tmp_path, every=1)

    with pytest.raises(UserError) as error:
        train(state, adapt_config(), source, target, CPU, RunOptions(progress=False, snapshots=snapshots))

    assert str(error.value) == (
        f"training stopped at iteration {nan_iteration}: loss term 'loss_seg/main' is nan (a learning rate too "
        f"high for this setting, or a bad input); the last good snapshot {tmp_path}/iter_{nan_iteration - 1:08d} "
        "is kept"
    )
    assert snapshots.existing()[0].name == f"iter_{nan_iteration - 1:08d}"


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_the_data_stream_yields_the_batches_of_shuffle_true_over_many_passes(batch_size):
    reference = torch.utils.data.DataLoader(list(range(7)), batch_size=batch_size, shuffle=True, drop_last=True,
                                            generator=torch.Generator().manual_seed(5))
    expected = [b.tolist() for b in itertools.islice(itertools.chain.from_iterable(itertools.repeat(reference)), 15)]
    stream = DataStream(train_loader(list(range(7)), batch_size, 5, 0))
    assert [b.tolist() for b in itertools.islice(stream, 15)] == expected


@pytest.mark.parametrize("consumed", [1, 3, 6, 7, 10])
def test_a_restored_data_stream_continues_with_the_next_batch(consumed):
    stream = DataStream(train_loader(list(range(7)), 2, 5, 0))
    expected = [b.tolist() for b in itertools.islice(stream, consumed + 8)]
    stream = DataStream(train_loader(list(range(7)), 2, 5, 0))
    list(itertools.islice(stream, consumed))
    restored = DataStream(train_loader(list(range(7)), 2, 5, 0))
    restored.restore(stream.position())
    assert [b.tolist() for b in itertools.islice(restored, 8)] == expected[consumed:]


def test_a_run_resumed_mid_interval_logs_the_same_means_in_the_same_order_as_an_uninterrupted_one(
        tmp_path, monkeypatch):
    class RecordingLive:
        def __init__(self):
            self.steps, self.step = [{}], 0

        def log_metric(self, name, value):
            self.steps[-1][name] = value

        def next_step(self):
            self.steps[-1]["step"] = self.step
            self.steps.append({})

    state, (source, target) = fresh_run()
    whole = RecordingLive()
    train(state, adapt_config(), source, target, CPU, RunOptions(live=whole, progress=False))
    snapshots = snapshots_in(tmp_path)
    run_until_killed(snapshots, 4, monkeypatch)  # snapshot at 2, half-way through the first interval of 4
    state, (source, target) = fresh_run()
    resumed = RecordingLive()
    train(state, adapt_config(), source, target, CPU, RunOptions(live=resumed, progress=False, snapshots=snapshots,
          resume=snapshots.load("adapted")))
    assert [step["step"] for step in whole.steps[:-1]] == [4, 6]
    assert [list(step.items()) for step in resumed.steps] == [list(step.items()) for step in whole.steps]


def signalling_step(signum, during):
    """``training.train_step`` that sends ``signum`` to this process in the middle of iteration ``during``."""
    step = training.train_step

    def step_then_signal(state, *args):
        stats = step(state, *args)
        if state.iteration == during:
            os.kill(os.getpid(), signum)
        return stats

    return step_then_signal


@pytest.mark.parametrize("signum, during", [(signal.SIGINT, 3), (signal.SIGTERM, 5), (signal.SIGINT, 4)])
def test_a_signal_during_training_snapshots_that_iteration_and_a_rerun_resumes_bit_identical(
    signum, during, uninterrupted_adapt_weights, tmp_path, monkeypatch, capsys
):
    snapshots = snapshots_in(tmp_path)  # every 2 iterations: 4 is also a periodic snapshot
    state, (source, target) = fresh_run()
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with monkeypatch.context() as patch:
        patch.setattr(training, "train_step", signalling_step(signum, during))
        with pytest.raises(Interrupted) as stopped:
            train(state, adapt_config(), source, target, CPU, RunOptions(progress=False, snapshots=snapshots,
                                                                           description="adapted"))
    name = signal.Signals(signum).name
    assert str(stopped.value) == (f"adapted: stopped by {name} after iteration {during} of {ITERATIONS}; snapshot "
                                  f"{tmp_path}/iter_{during:08d} written; `dvc repro` resumes adapted from iteration "
                                  f"{during}")
    assert stopped.value.signum == signum
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # handlers restored
    assert snapshots.existing()[0].name == f"iter_{during:08d}"
    result = resumed_weights(snapshots)
    assert f"resuming from snapshot {tmp_path}/iter_{during:08d}" in capsys.readouterr().out
    assert all(torch.equal(result[key], uninterrupted_adapt_weights[key]) for key in uninterrupted_adapt_weights)


def test_a_signal_in_a_run_without_snapshots_says_the_stage_starts_over(tmp_path, monkeypatch):
    state, (source, target) = fresh_run()
    monkeypatch.setattr(training, "train_step", signalling_step(signal.SIGINT, 2))
    with pytest.raises(Interrupted, match=r"^selftrain: stopped by SIGINT after iteration 2 of 6; this run keeps no "
                                          r"snapshots .* `dvc repro` starts selftrain over$"):
        train(state, adapt_config(), source, target, CPU, RunOptions(progress=False, description="selftrain"))
