"""The loader path that CUDA runs take is the one every run takes: ``DeviceLoader`` on every device.

CI has no GPU. Before, only CUDA runs wrapped their loaders, the wrapper hid the resumable batch
sampler, and the first snapshot of every CUDA run crashed while all CPU tests passed. Here the CPU runs
the same wrapper: snapshots, exact resume and the data order are checked through it.
"""

import itertools
import os

import pytest
import torch

from globallocal import config
from globallocal.data.loading import DeviceLoader, SeededBatchSampler, resolve_num_workers, train_loader
from globallocal.data.order import DataStream
from globallocal.training import loop as training
from globallocal.training.distributed import DistributedContext
from globallocal.training.loop import RunOptions, build_train_state, train
from globallocal.training.snapshots import capture
from support.tiny_models import K, TinySegmenter
from support.tiny_runs import (
    ITERATIONS,
    Killed,
    Squares,
    adapt_config,
    killing_step_before,
    snapshots_in,
    train_until_killed,
    weights,
)

CPU = torch.device("cpu")


class Indices(torch.utils.data.Dataset):
    """Item i is ``{"image": tensor([i])}``: a batch shows which items it holds."""

    def __init__(self, size):
        self.size = size

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        return {"image": torch.tensor([index])}


def items(stream, count):
    return [batch["image"].flatten().tolist() for batch in itertools.islice(stream, count)]


def test_every_device_gets_the_wrapper_and_it_shows_the_resumable_sampler():
    loader = DistributedContext(device=CPU).loader(Indices(10), 2, seed=3, num_workers=0)
    assert isinstance(loader, DeviceLoader)
    assert isinstance(loader.batch_sampler, SeededBatchSampler)
    assert DataStream(loader).sampler is loader.batch_sampler


def test_the_data_order_is_the_same_with_and_without_the_wrapper():
    # 7 items in batches of 2: 3 batches per pass, 12 batches = 4 passes (each reshuffled)
    bare = items(DataStream(train_loader(Indices(7), 2, seed=3, num_workers=0)), 12)
    wrapped = items(DataStream(DistributedContext(device=CPU).loader(Indices(7), 2, seed=3, num_workers=0)), 12)
    assert wrapped == bare
    assert sorted(sum(bare[:3], [])) == sorted(set(sum(bare[:3], [])))  # a pass holds each item at most once


def test_on_the_cpu_the_wrapper_hands_over_the_loaders_tensors_without_a_copy():
    batch = next(iter(DeviceLoader([{"image": torch.arange(4.0), "name": ["a"]}], CPU)))
    assert batch["name"] == ["a"]
    assert batch["image"].tolist() == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("consumed", [1, 3, 4, 8])
def test_a_snapshot_is_captured_and_restored_through_the_wrapper(consumed):
    """The crash of the first CUDA snapshot: ``DataStream.position`` on a wrapped loader."""
    def wrapped():
        return DeviceLoader(train_loader(Indices(7), 2, seed=5, num_workers=0), CPU)

    expected = items(DataStream(wrapped()), consumed + 5)
    stream = DataStream(wrapped())
    items(stream, consumed)
    torch.manual_seed(0)
    payload = capture(build_train_state(TinySegmenter(), adapt_config(), K), {"source": stream, "target": None},
                      {"sums": {}})
    assert payload["streams"]["source"]["consumed"] == (consumed - 1) % 3 + 1
    restored = DataStream(wrapped())
    restored.restore(payload["streams"]["source"])
    assert items(restored, 5) == expected[consumed:]


def wrapped_run():
    """What a stage builds before training, its loaders from ``DistributedContext.loader`` as in the stages."""
    torch.manual_seed(0)
    state = build_train_state(TinySegmenter(), adapt_config(), K)
    context = DistributedContext(device=CPU)
    return state, (context.loader(Squares(), 2, 0, 0), context.loader(Squares(False), 2, 1, 0))


@pytest.fixture
def bare_loaders_weights(uninterrupted_adapt_weights):
    """The uninterrupted run on bare loaders (what CPU runs used before the wrapper was everywhere)."""
    return uninterrupted_adapt_weights


def test_an_uninterrupted_run_through_the_wrapper_ends_bit_identical_to_bare_loaders(bare_loaders_weights):
    state, (source, target) = wrapped_run()
    train(state, adapt_config(), source, target, CPU, RunOptions(progress=False))
    ours = weights(state)
    assert ours.keys() == bare_loaders_weights.keys()
    assert all(torch.equal(ours[key], bare_loaders_weights[key]) for key in ours)


@pytest.mark.parametrize("kill_before", [3, ITERATIONS])
def test_a_run_through_the_wrapper_killed_then_resumed_is_bit_identical(
    kill_before, bare_loaders_weights, tmp_path, monkeypatch, capsys
):
    snapshots = snapshots_in(tmp_path)
    train_until_killed(*wrapped_run(), snapshots, kill_before, monkeypatch)
    state, (source, target) = wrapped_run()
    train(state, adapt_config(), source, target, CPU, RunOptions(progress=False, snapshots=snapshots,
          resume=snapshots.load("adapted")))

    newest = (kill_before - 1) // 2 * 2
    assert f"resuming from snapshot {tmp_path}/iter_{newest:08d} (iteration {newest})" in capsys.readouterr().out
    ours = weights(state)
    assert all(torch.equal(ours[key], bare_loaders_weights[key]) for key in bare_loaders_weights)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_snapshots_through_the_pinned_wrapper_and_resumes(tmp_path, monkeypatch, capsys):
    """The crash itself: a CUDA run that writes snapshots, is killed, and resumes to the last iteration."""
    cuda = torch.device("cuda")
    snapshots = snapshots_in(tmp_path)

    def cuda_run():
        torch.manual_seed(0)
        state = build_train_state(TinySegmenter().to(cuda), adapt_config(), K)
        context = DistributedContext(device=cuda)
        return state, (context.loader(Squares(), 2, 0, 0), context.loader(Squares(False), 2, 1, 0))

    state, (source, target) = cuda_run()
    assert source.loader.pin_memory
    with monkeypatch.context() as patch:
        patch.setattr(training, "train_step", killing_step_before(ITERATIONS))
        with pytest.raises(Killed):
            train(state, adapt_config(), source, target, cuda, RunOptions(progress=False, snapshots=snapshots))
    state, (source, target) = cuda_run()
    train(state, adapt_config(), source, target, cuda, RunOptions(progress=False, snapshots=snapshots,
          resume=snapshots.load("adapted")))
    assert f"(iteration {ITERATIONS - 2})" in capsys.readouterr().out
    assert state.iteration == ITERATIONS
    assert all(torch.isfinite(value).all() for value in weights(state).values())


def test_auto_workers_load_beside_a_gpu_and_leave_the_cpus_to_a_cpu_step(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(12)), raising=False)
    assert config.load_validated_params().num_workers == "auto"  # the default
    assert resolve_num_workers("auto", device=CPU) == 0  # the committed CPU figures: loading in the step's process
    assert resolve_num_workers("auto", device=torch.device("cuda")) == 8  # 12 CPUs, capped
    assert resolve_num_workers("auto", processes_per_node=4, device=torch.device("cuda")) == 3
    assert resolve_num_workers(2, device=CPU) == 2  # a count is taken as given
