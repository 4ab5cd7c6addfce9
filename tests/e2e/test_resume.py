"""A training stage killed with SIGKILL resumes from its snapshots and ends bit-identical to an uninterrupted run.

The stage's loaders are the device-wrapped ones that CUDA runs use (checked by the kill driver).

The stage runs as a subprocess on a tiny setting. A small driver kills it from inside at a chosen
moment (no timing involved): before an iteration, or half-way through writing a snapshot file.
The snapshot folder's other behaviours (damaged newest, other fingerprint, keep) are unit-tested in
test_snapshots.py.
"""

import random
import shutil
import signal
import sys

import pytest
import torch
import yaml

from support.tiny_project import copy_code, run, tiny_params

ITERATIONS = 5
SNAPSHOT_EVERY = 2
#: log_every is not a multiple of snapshot_every, so a snapshot falls inside a logging interval.
LOG_EVERY = 3

#: Runs a stage script, killing itself with SIGKILL when it is about to run iteration KILL_AT.
KILL_BEFORE_ITERATION = """
import os, runpy, signal, sys
import globallocal.training.loop as training
kill_at, script = int(sys.argv[1]), sys.argv[2]
step = training.train_step
def killing_step(state, *args, **kwargs):
    if state.iteration + 1 == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return step(state, *args, **kwargs)
training.train_step = killing_step
train = training.train
def checking_train(state, config, source_loader, target_loader, *args, **kwargs):
    # the stage's loaders take the device path that CUDA runs take (a no-op copy on the CPU)
    assert type(source_loader).__name__ == type(target_loader).__name__ == "DeviceLoader"
    return train(state, config, source_loader, target_loader, *args, **kwargs)
training.train = checking_train
sys.argv = [script]
runpy.run_path(script, run_name="__main__")
"""

#: Runs a stage script, killing itself half-way through writing the state file of snapshot KILL_AT.
KILL_DURING_SNAPSHOT = """
import io, os, runpy, signal, sys
import torch
kill_at, script = int(sys.argv[1]), sys.argv[2]
save = torch.save
def killing_save(obj, path, *args, **kwargs):
    if f"iter_{kill_at:08d}" in str(path):
        buffer = io.BytesIO()
        save(obj, buffer)
        with open(path, "wb") as handle:
            handle.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return save(obj, path, *args, **kwargs)
torch.save = killing_save
sys.argv = [script]
runpy.run_path(script, run_name="__main__")
"""


def python(args, cwd, check=True):
    return run([sys.executable, *args], cwd, check=check)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """Tiny data, a pretrained model, and the reference: an uninterrupted adapt run's model and logs."""
    root = tmp_path_factory.mktemp("resume")
    copy_code(root)
    params = tiny_params()
    params["adapt"].update(iterations=ITERATIONS, max_iters=ITERATIONS)
    params["train"].update(snapshot_every=SNAPSHOT_EVERY, keep_snapshots=2, log_every=LOG_EVERY)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    python(["pipeline/prepare.py"], root)
    python(["pipeline/pretrain.py"], root)
    python(["pipeline/adapt.py"], root)
    reference = root / "reference"
    reference.mkdir()
    shutil.copy(root / "models/adapted.pt", reference / "adapted.pt")
    shutil.copytree(root / "reports/train/adapted", reference / "log")
    return root


def killed(project, driver: str, kill_at: int):
    result = python(["-c", driver, str(kill_at), "pipeline/adapt.py"], project, check=False)
    assert result.returncode == -9, result.stderr[-2000:]
    return result


def assert_same_as_uninterrupted(project):
    ours = torch.load(project / "models/adapted.pt", weights_only=True)
    reference = torch.load(project / "reference/adapted.pt", weights_only=True)
    for part in ("model", "discriminators", "optimizer", "optimizer_d"):
        assert ours[part].keys() == reference[part].keys()
    for key, value in reference["model"].items():
        assert torch.equal(ours["model"][key], value), key
    for key, value in reference["discriminators"].items():
        assert torch.equal(ours["discriminators"][key], value), key
    # dvclive: every logged step once, with the uninterrupted run's values
    for tsv in sorted((project / "reference/log/plots/metrics").rglob("*.tsv")):
        resumed = (project / "reports/train/adapted/plots/metrics"
                   / tsv.relative_to(project / "reference/log/plots/metrics"))
        assert resumed.read_text() == tsv.read_text(), tsv.name
    assert not (project / "snapshots/adapted").exists()  # removed once the final checkpoint is written


def test_sigkill_at_a_random_iteration_then_rerun_resumes_bit_identical(project):
    kill_at = random.randrange(SNAPSHOT_EVERY + 1, ITERATIONS + 1)  # at least one snapshot exists
    killed(project, KILL_BEFORE_ITERATION, kill_at)
    assert (project / "snapshots/adapted").is_dir()

    result = python(["pipeline/adapt.py"], project)

    newest = (kill_at - 1) // SNAPSHOT_EVERY * SNAPSHOT_EVERY
    resumed = [line for line in result.stdout.splitlines() if "resuming" in line]
    assert resumed == [f"adapted: resuming from snapshot snapshots/adapted/iter_{newest:08d} (iteration {newest})"], \
        f"killed before iteration {kill_at}:\n{result.stdout}"
    assert_same_as_uninterrupted(project)


def test_sigkill_while_writing_a_snapshot_resumes_from_the_one_before(project):
    killed(project, KILL_DURING_SNAPSHOT, 2 * SNAPSHOT_EVERY)
    assert (project / f"snapshots/adapted/iter_{2 * SNAPSHOT_EVERY:08d}.tmp").is_dir()  # the partial write

    result = python(["pipeline/adapt.py"], project)

    assert f"resuming from snapshot snapshots/adapted/iter_{SNAPSHOT_EVERY:08d}" in result.stdout
    assert_same_as_uninterrupted(project)


#: Runs a stage script, sending itself SIGNAL in the middle of iteration AT (as a Ctrl-C in the terminal would).
SIGNAL_DURING_ITERATION = """
import os, runpy, signal, sys
import globallocal.training.loop as training
signum, at, script = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
step = training.train_step
def signalling_step(state, *args, **kwargs):
    stats = step(state, *args, **kwargs)
    if state.iteration == at:
        os.kill(os.getpid(), signum)
    return stats
training.train_step = signalling_step
sys.argv = [script]
runpy.run_path(script, run_name="__main__")
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_prints_one_line_keeps_every_iteration_and_the_rerun_resumes_bit_identical(
        project, signum):
    at = 3  # between the periodic snapshots at 2 and 4: only the stop's own snapshot keeps iteration 3
    (project / "models/adapted.pt").unlink(missing_ok=True)  # as DVC removes a stage's outputs before running it
    result = python(["-c", SIGNAL_DURING_ITERATION, str(int(signum)), str(at), "pipeline/adapt.py"], project,
                    check=False)

    assert result.returncode == 128 + signum, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"adapted: stopped by {signal.Signals(signum).name} after iteration {at} of {ITERATIONS}; snapshot "
        f"snapshots/adapted/iter_{at:08d} written; `dvc repro` resumes adapted from iteration {at}")
    assert not (project / "models/adapted.pt").exists()  # no checkpoint of a run that did not finish
    rerun = python(["pipeline/adapt.py"], project)
    assert f"adapted: resuming from snapshot snapshots/adapted/iter_{at:08d} (iteration {at})" in rerun.stdout
    assert_same_as_uninterrupted(project)
