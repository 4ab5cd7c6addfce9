"""The paper presets on tiny copies of the real layouts, through the commands a user runs: apply the
preset (roots pointed at the copies, sizes and schedule shrunk), `prepare`, a training iteration or
two, and `evaluate` on the checkpoint. Also: the stages follow the real data's content through DVC."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.real_layouts import make_cityscapes, make_gta5, make_synthia
from support.tiny_project import REPO

PROJECT_FILES = ("dvc.yaml", "params.yaml", "pipeline", "src", "presets", ".gitignore")
#: Random initialisation (no weights can be downloaded here; BN learned, since a frozen-BN ResNet-101 from
#: random weights overflows to NaN, which training now stops on), one iteration per stage, tiny sizes.
SHRUNK = ["model.backbone_weights=null", "model.bn_protocol=learned", "num_workers=0", "device=cpu",
          "train.log_every=1", "prepare.dev_size=1",
          "pretrain.iterations=1", "pretrain.max_iters=1", "adapt.iterations=1", "adapt.max_iters=1",
          "oracle.iterations=1", "oracle.max_iters=1"]
#: Input sizes (width, height): the smallest the global discriminator's five stride-2 convs accept.
SOURCE_SIZE, TARGET_SIZE = (64, 36), (64, 32)


def run(command: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=f"{cwd / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{command} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def copy_project(root: Path) -> Path:
    root.mkdir(parents=True)
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(source, root / name)
    return root


def apply_preset(project: Path, preset: str, extra=()) -> None:
    sets = [f"data.source_size=[{SOURCE_SIZE[0]}, {SOURCE_SIZE[1]}]",
            f"data.target_size=[{TARGET_SIZE[0]}, {TARGET_SIZE[1]}]", *SHRUNK, *extra]
    run([sys.executable, "-m", "globallocal", "preset", "apply", preset,
         *(arg for value in sets for arg in ("--set", value))], project)


def test_paper_gta5_preset_prepares_trains_and_scores_tiny_real_layouts(tmp_path):
    project = copy_project(tmp_path / "project")
    make_gta5(project / "data" / "GTA5")  # the preset's default roots
    make_cityscapes(project / "data" / "Cityscapes")
    apply_preset(project, "paper_gta5")
    params = (project / "params.yaml").read_text()
    assert "arch: deeplabv2_resnet101" in params and "local_window: 1" in params

    for stage in ("fingerprint", "prepare", "data_report", "pretrain", "adapt"):
        run([sys.executable, f"pipeline/{stage}.py"], project)
    summary = json.loads((project / "reports/data/summary.json").read_text())
    assert summary["images"] == {"source": 4, "target_train": 4, "target_val": 3}
    assert summary["size_mismatches"]["source"] == 1 and summary["blank_images"]["source"] == 1

    result = run([sys.executable, "-m", "globallocal", "evaluate", "models/adapted.pt", "--target-root",
                  "data/Cityscapes", "--split", "val", "--out", "scores", "--size", "64x32", "--device", "cpu"],
                 project)
    metrics = json.loads((project / "scores/metrics.json").read_text())
    assert metrics["num_images"] == 3 and 0 <= metrics["miou"] <= 100 and "miou_16" not in metrics
    assert "models/adapted.pt: miou" in result.stdout
    official = json.loads((project / "scores/official_check.json").read_text())
    assert official["max_abs_per_class_iou_difference"] < 1e-6


def test_paper_synthia_preset_reads_16_bit_labels_and_reports_miou_16_and_13(tmp_path):
    project = copy_project(tmp_path / "project")
    make_synthia(project / "data" / "SYNTHIA")
    make_cityscapes(project / "data" / "Cityscapes")
    apply_preset(project, "paper_synthia")
    for stage in ("fingerprint", "prepare", "pretrain"):
        run([sys.executable, f"pipeline/{stage}.py"], project)
    run([sys.executable, "-m", "globallocal", "evaluate", "models/pretrain.pt", "--target-root", "data/Cityscapes",
         "--out", "scores", "--size", "64x32", "--synthia", "--device", "cpu", "--no-official-check"], project)
    metrics = json.loads((project / "scores/metrics.json").read_text())
    assert {"miou", "miou_16", "miou_13"} <= set(metrics)


def test_prepare_fails_fast_naming_a_missing_label(tmp_path):
    project = copy_project(tmp_path / "project")
    make_gta5(project / "data" / "GTA5")
    make_cityscapes(project / "data" / "Cityscapes")
    (project / "data/GTA5/labels/00003.png").unlink()
    apply_preset(project, "paper_gta5")
    result = run([sys.executable, "pipeline/prepare.py"], project, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "data/GTA5/labels/00003.png" in result.stderr


@pytest.fixture
def dvc_project(tmp_path):
    """A git + DVC copy of the project on tiny real layouts, `dvc repro prepare` run once."""
    project = copy_project(tmp_path / "project")
    make_gta5(project / "data" / "GTA5")
    make_cityscapes(project / "data" / "Cityscapes")
    apply_preset(project, "paper_gta5")
    run(["git", "init", "-q"], project)
    run([sys.executable, "-m", "dvc", "init", "-q"], project)
    run(["git", "add", "-A"], project)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"], project)
    run([sys.executable, "-m", "dvc", "repro", "prepare"], project)
    return project


def test_dvc_reruns_prepare_only_when_the_real_data_changes(dvc_project):
    fingerprint = (dvc_project / "data/lists/content_fingerprint.txt").read_text()
    again = run([sys.executable, "-m", "dvc", "repro", "prepare"], dvc_project)
    assert "Running stage 'prepare'" not in again.stdout  # unchanged data: only the fingerprint stage ran

    label = dvc_project / "data/GTA5/labels/00001.png"
    label.write_bytes((dvc_project / "data/GTA5/labels/00004.png").read_bytes())  # a replaced label
    changed = run([sys.executable, "-m", "dvc", "repro", "prepare"], dvc_project)
    assert "Running stage 'prepare'" in changed.stdout
    assert (dvc_project / "data/lists/content_fingerprint.txt").read_text() != fingerprint
