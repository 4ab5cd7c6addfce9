"""Reading a finished experiment's DVC outputs from its git ref and the cache (experiment_files), and the
local-term diagnostics table built from them."""

import hashlib
import json
import subprocess

import pytest
import yaml

from globallocal.experiments import finished_runs as experiment_files
from globallocal.reporting import diagnostics_table


def _store(cache, data: bytes) -> str:
    md5 = hashlib.md5(data).hexdigest()
    path = cache / md5[:2] / md5[2:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return md5


@pytest.fixture
def experiment(tmp_path, monkeypatch):
    """A repository with one experiment ref whose dvc.lock names a folder output and a file output."""
    monkeypatch.chdir(tmp_path)
    cache = tmp_path / ".dvc" / "cache" / "files" / "md5"
    tsv = b"step\tlocal_main_target\n10\t0.5\n20\tnan\n30\t0.75\n"
    listing = json.dumps([{"md5": _store(cache, tsv), "relpath": "plots/metrics/d_acc/local_main_target.tsv"}])
    folder_md5 = _store(cache, listing.encode()) + ".dir"
    (cache / folder_md5[:2] / folder_md5[2:]).write_text(listing)
    file_md5 = _store(cache, b'{"miou": 12.5}')
    lock = {"schema": "2.0", "stages": {
        "adapt": {"cmd": "python pipeline/adapt.py", "outs": [{"path": "reports/train/adapted", "md5": folder_md5}]},
        "evaluate": {"cmd": "python pipeline/evaluate.py", "outs": [{"path": "reports/x.json", "md5": file_md5}]}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "dvc.lock"], check=True)
    subprocess.run([*git, "commit", "-qm", "exp"], check=True)
    subprocess.run([*git, "update-ref", "refs/exps/ab/cdef/run-a-s0", "HEAD"], check=True)
    return "refs/exps/ab/cdef/run-a-s0"


def test_experiment_refs_are_named_by_their_last_part(experiment):
    assert experiment_files.experiment_refs() == {"run-a-s0": experiment}


def test_a_file_output_and_a_file_inside_a_folder_output_are_read_from_the_cache(experiment):
    assert experiment_files.output_file(experiment, "reports/x.json") == b'{"miou": 12.5}'
    assert experiment_files.logged_series(experiment, "reports/train/adapted", "d_acc/local_main_target")[::2] == [
        0.5, 0.75]
    assert experiment_files.output_file(experiment, "reports/missing.json") is None
    assert experiment_files.logged_series(experiment, "reports/train/adapted", "loss_d/local_main") == []


def test_diagnostics_table_prints_shares_in_percent_and_dashes_for_missing_values():
    row = {"family": "advent", "seed": 1, "dev_kept_source_only": 0.081, "dev_kept_adapted": 0.198,
           "dev_precision_source_only": 0.823, "dev_precision_adapted": "",
           "train_kept_source_mean": 0.3, "train_kept_source_last": 0.25, "train_kept_target_mean": 0.5,
           "train_kept_target_last": 0.5, "train_d_acc_source_mean": 0.071, "train_d_acc_source_last": 0.054,
           "train_d_acc_target_mean": 0.96, "train_d_acc_target_last": ""}
    last = diagnostics_table([row], {"shift": "scale-1", "bn": "learned"}).splitlines()[-1]
    assert last == "| advent | 1 | 8.1 -> 19.8 | 82.3 -> — | 30.0 (25.0) | 50.0 (50.0) | 7.1 (5.4) | 96.0 (—) |"


def test_queueing_is_refused_while_a_repro_holds_a_workspace_lock(tmp_path):
    import os

    from globallocal.experiments.queue import check_no_repro_running

    rwlock = tmp_path / "rwlock"
    check_no_repro_running(rwlock)  # no lock file: nothing runs
    dead = {"read": {"/w/params.yaml": [{"pid": 2 ** 22 + 12345, "cmd": "dvc repro"}]}, "write": {}}
    rwlock.write_text(json.dumps(dead))
    check_no_repro_running(rwlock)  # a stale lock of a process that is gone does not block
    other = {"read": {"/w/params.yaml": [{"pid": os.getpid(), "cmd": "dvc exp show"}]}, "write": {}}
    rwlock.write_text(json.dumps(other))
    check_no_repro_running(rwlock)  # a live command that is not a repro does not either
    live = {"read": {"/w/params.yaml": [{"pid": os.getpid(), "cmd": ".venv/bin/dvc repro"}]}, "write": {}}
    rwlock.write_text(json.dumps(live))
    with pytest.raises(SystemExit, match=f"pid {os.getpid()}"):
        check_no_repro_running(rwlock)


def test_queued_stages_import_the_library_of_their_own_copy_of_the_repository(tmp_path):
    """The runner's environment puts the relative ``src`` first: a stage started in an experiment's copy
    imports that copy's globallocal, whatever the editable install points at."""
    import os
    import sys

    from globallocal.experiments.queue import ENV

    assert ENV["PYTHONPATH"].split(os.pathsep)[0] == "src"
    copy = tmp_path / "exp-copy"
    (copy / "src" / "globallocal").mkdir(parents=True)
    (copy / "src" / "globallocal" / "__init__.py").write_text("WHERE = 'the copy'\n")
    out = subprocess.run([sys.executable, "-c", "import globallocal; print(globallocal.WHERE)"], cwd=copy,
                         env=ENV, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "the copy"


def test_a_sweep_that_names_models_tabulates_their_dev_and_val_scores_per_variant():
    from globallocal.experiments.runner import sweep_rows

    def metrics(source_only, oracle):
        return {"source_only": {"miou": source_only}, "oracle": {"miou": oracle}, "adapted": {"miou": 0.0},
                "dev": {"source_only": {"miou": source_only + 1}, "oracle": {"miou": oracle + 1},
                        "adapted": {"miou": 0.0}}}

    finished = {"demo-a-s0": metrics(10.0, 20.0), "demo-b-s0": metrics(18.0, 35.0)}
    rows = sweep_rows("demo", [0, 1], {"a": {}, "b": {"model.arch": "efficientnet_lite0"}},
                      ("source_only", "oracle"), finished)
    assert [(r["model"], r["variant"], r["dev_miou"], r["val_miou"]) for r in rows] == [
        ("source_only", "a", 11.0, 10.0), ("source_only", "b", 19.0, 18.0),
        ("oracle", "a", 21.0, 20.0), ("oracle", "b", 36.0, 35.0)]
    assert rows[1]["params"] == "model.arch=efficientnet_lite0"
    default = sweep_rows("demo", [0], {"a": {}}, ("adapted",), finished)
    assert default == [{"variant": "a", "seed": 0, "val_miou": 0.0, "dev_miou": 0.0, "params": ""}]


def test_the_backbone_sweep_names_valid_params_and_the_models_its_rule_reads():
    from pathlib import Path

    from globallocal import config

    spec = yaml.safe_load((Path(__file__).resolve().parents[1] / "sweeps/backbone_dev.yaml").read_text())
    assert spec["models"][:2] == ["source_only", "oracle"] and spec["variants"]["mobilenet_default"] == {}
    base = config.load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    for name, overrides in spec["variants"].items():
        params = yaml.safe_load(yaml.safe_dump(base))
        for key, value in overrides.items():
            *parents, leaf = key.split(".")
            node = params
            for part in parents:
                node = node[part]
            node[leaf] = value
        tree = config.parse(params)
        assert (tree.model.arch == "efficientnet_lite0") == (name != "mobilenet_default"), name
