"""A killed `prepare` leaves the previous benchmark whole: byte-identical files, `dvc status` clean.

`prepare` regenerates the embedded benchmark in ``data/synthetic.tmp`` and swaps it in only when it is
whole. A small driver runs the stage script and sends the process a real signal (SIGKILL or SIGTERM)
at a chosen moment, with no timing involved: as it is about to write its N-th image, or between the
swap's two renames (the live folder renamed aside, the new one not yet in). A tiny benchmark keeps
the whole file to about half a minute.
"""

import signal
import sys

import pytest
import yaml

from globallocal.atomic import OLD_SUFFIX, TMP_SUFFIX
from support.configs import synthetic_config
from support.tiny_project import copy_project, run

BENCHMARK = "data/synthetic"
#: The outputs of prepare; the benchmark first.
OUTPUTS = (BENCHMARK, "data/lists", "data/statistics")

#: Runs prepare, sending itself SIGNAL as it is about to write its KILL_AT-th RGB image.
KILL_DURING_GENERATION = """
import os, runpy, signal, sys
sys.path.insert(0, "pipeline")
import globallocal.data.synthetic.writing as writing
kill_at, signum, written = int(sys.argv[1]), int(sys.argv[2]), [0]
save = writing._save_rgb
def killing_save(path, rgb):
    written[0] += 1
    if written[0] == kill_at:
        os.kill(os.getpid(), signum)
    return save(path, rgb)
writing._save_rgb = killing_save
sys.argv = ["pipeline/prepare.py"]
runpy.run_path("pipeline/prepare.py", run_name="__main__")
"""

#: Runs prepare, sending itself SIGNAL between the swap's renames: the live benchmark is renamed to
#: data/synthetic.old, the complete new one is about to be renamed in.
KILL_BETWEEN_RENAMES = """
import os, runpy, signal, sys
sys.path.insert(0, "pipeline")
import globallocal.atomic as atomic
signum = int(sys.argv[1])
replace = os.replace
class KillingOs:
    def __getattr__(self, name):
        return getattr(os, name)
    def replace(self, src, dst):
        if str(src).endswith(".tmp") and str(dst) == "data/synthetic":
            os.kill(os.getpid(), signum)
        return replace(src, dst)
atomic.os = KillingOs()
sys.argv = ["pipeline/prepare.py"]
runpy.run_path("pipeline/prepare.py", run_name="__main__")
"""

SIGNALS = [pytest.param(signal.SIGKILL, id="SIGKILL"), pytest.param(signal.SIGTERM, id="SIGTERM")]


def files_of(root) -> dict[str, bytes] | None:
    if not root.exists():
        return None
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def dvc_status(project) -> list[str]:
    return run([sys.executable, "-m", "dvc", "status", "prepare"], project).stdout.split()


#: `dvc status prepare` when prepare's outputs, deps and params match dvc.lock.
CLEAN = "Data and pipelines are up to date.".split()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A git + DVC copy of the project with a tiny benchmark, `dvc repro prepare` run once."""
    root = tmp_path_factory.mktemp("prepare_kill")
    copy_project(root)
    run(["git", "init", "-q"], root)
    run([sys.executable, "-m", "dvc", "init", "-q"], root)
    run(["git", "add", "-A"], root)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"], root)
    run([sys.executable, "-m", "dvc", "repro", "prepare"], root)
    assert dvc_status(root) == CLEAN
    return root


@pytest.fixture()
def before(project):
    """Every file prepare wrote, before the killed run."""
    return {name: files_of(project / name) for name in OUTPUTS}


def test_the_tiny_benchmark_holds_fifteen_images_and_their_labels(before):
    images = [name for name in before[BENCHMARK] if "labels" not in name and "gtFine" not in name
              and name.endswith(".png")]
    assert len(images) == 6 + 6 + 3  # source, target train, target val of tiny_params


@pytest.mark.parametrize("signum", SIGNALS)
def test_a_kill_during_generation_leaves_the_previous_benchmark_byte_identical(project, before, signum):
    kill_at = 8  # half-way through the 15 images

    result = run([sys.executable, "-c", KILL_DURING_GENERATION, str(kill_at), str(int(signum))], project,
                 check=False)

    assert result.returncode == -signum, result.stderr[-2000:]
    assert (project / (BENCHMARK + TMP_SUFFIX)).is_dir()  # the partial new one, beside the live one
    for name, previous in before.items():
        assert files_of(project / name) == previous, f"{name} changed after a {signum.name} during generation"
    assert dvc_status(project) == CLEAN


@pytest.mark.parametrize("signum", SIGNALS)
def test_a_kill_between_the_swap_renames_is_undone_by_the_next_run(project, before, signum):
    result = run([sys.executable, "-c", KILL_BETWEEN_RENAMES, str(int(signum))], project, check=False)

    assert result.returncode == -signum, result.stderr[-2000:]
    assert not (project / BENCHMARK).exists()  # the moment the kill chose: old renamed aside ...
    assert files_of(project / (BENCHMARK + OLD_SUFFIX)) == before[BENCHMARK]  # ... and still whole
    # The next run puts the previous benchmark back before anything else, even if it is killed too.
    result = run([sys.executable, "-c", KILL_DURING_GENERATION, "3", str(int(signal.SIGKILL))], project,
                 check=False)
    assert result.returncode == -signal.SIGKILL
    assert files_of(project / BENCHMARK) == before[BENCHMARK]
    assert not (project / (BENCHMARK + OLD_SUFFIX)).exists()
    assert dvc_status(project) == CLEAN


def test_the_next_run_after_a_kill_completes_and_removes_the_staging_folder(project, before):
    run([sys.executable, "-c", KILL_DURING_GENERATION, "5", str(int(signal.SIGKILL))], project, check=False)
    assert (project / (BENCHMARK + TMP_SUFFIX)).is_dir()

    run([sys.executable, "pipeline/prepare.py"], project)

    assert not (project / (BENCHMARK + TMP_SUFFIX)).exists()
    for name, previous in before.items():
        assert files_of(project / name) == previous  # same params: the same bytes again
    assert dvc_status(project) == CLEAN


def test_a_refused_folder_is_reported_before_anything_is_removed(tmp_path):
    """The foreign-folder check only looks: a dataset folder without the marker stays as it was."""
    from globallocal.data.synthetic import write_benchmark
    from globallocal.errors import UserError

    out = tmp_path / "out"
    (out / "gta5" / "images").mkdir(parents=True)
    (out / "gta5" / "images" / "00001.png").write_bytes(b"user data")
    with pytest.raises(UserError, match="did not write"):
        write_benchmark(out, synthetic_config(num_source=1, num_target_train=1, num_target_val=1))
    assert (out / "gta5" / "images" / "00001.png").read_bytes() == b"user data"


def test_a_failed_prepare_leaves_the_committed_data_statistics_in_place(tmp_path):
    """DVC removes a stage's outputs before it runs: reports/data/ is data_report's, which a failed prepare
    never reaches, so the committed files stay (the statistics prepare writes are in data/statistics/)."""
    root = tmp_path / "project"
    root.mkdir()
    copy_project(root)
    run(["git", "init", "-q"], root)
    run([sys.executable, "-m", "dvc", "init", "-q"], root)
    run([sys.executable, "-m", "dvc", "repro", "data_report"], root)
    run(["git", "add", "-A"], root)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"], root)
    committed = files_of(root / "reports/data")
    assert sorted(committed) == ["class_frequencies.json", "findings.json", "summary.json"]
    assert committed == files_of(root / "data/statistics")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["prepare"]["generate"] = False  # the roots are prepare's outputs: removed, so the data check fails
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    result = run([sys.executable, "-m", "dvc", "repro", "data_report"], root, check=False)

    assert result.returncode != 0 and "error: " in result.stderr + result.stdout
    assert "Running stage 'data_report'" not in result.stdout
    assert files_of(root / "reports/data") == committed
    assert run(["git", "status", "--porcelain", "reports"], root).stdout == ""
