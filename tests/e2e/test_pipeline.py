"""End to end: every DVC stage on a tiny setting, in a fresh git + DVC repo, through `dvc repro`."""

import json
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from globallocal.data.labels import CLASS_NAMES, TRAIN_TO_LABEL_ID
from support.tiny_project import REPO, copy_project, run, tiny_params


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the project with tiny params, reproduced once with `dvc repro`."""
    root = tmp_path_factory.mktemp("project")
    copy_project(root)
    (root / "reports").mkdir()
    shutil.copy(REPO / "reports/ablation.csv", root / "reports/ablation.csv")  # the report's ablation table
    run(["git", "init", "-q"], root)
    run([sys.executable, "-m", "dvc", "init", "-q"], root)
    run(["git", "add", "-A"], root)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"], root)
    run([sys.executable, "-m", "dvc", "repro"], root)
    return root


def test_repro_writes_val_and_dev_miou_and_per_class_iou_for_every_model(project):
    metrics = json.loads((project / "reports/metrics.json").read_text())
    dev = json.loads((project / "reports/metrics_dev.json").read_text())
    per_class = json.loads((project / "reports/per_class_iou.json").read_text())
    models = ["source_only", "adabn", "adapted", "oracle", "selftrained", "selftrain_control"]
    assert list(metrics) == models and list(dev) == models
    assert list(per_class) == models
    for model in models:
        assert list(metrics[model]) == ["miou"] and list(dev[model]) == ["miou"]
        assert list(per_class[model]) == list(CLASS_NAMES)
        defined = [v for v in per_class[model].values() if v is not None]
        assert metrics[model]["miou"] == pytest.approx(np.mean(defined), abs=0.01)
        assert 0 <= dev[model]["miou"] <= 100


def test_the_domain_probe_scores_every_evaluated_model(project):
    probe = json.loads((project / "reports/probe_auc.json").read_text())
    metrics = json.loads((project / "reports/metrics.json").read_text())
    assert list(probe["models"]) == list(metrics) and probe["map_size"] == [64, 32]
    for result in probe["models"].values():
        assert 0 <= result["auc"] <= 1 and len(result["folds"]) == 2
        assert result["auc"] == pytest.approx(sum(f["auc"] for f in result["folds"]) / 2)


def test_adabn_differs_from_source_only_in_batchnorm_statistics_only(project):
    source = torch.load(project / "models/source_only.pt", weights_only=True)
    adabn = torch.load(project / "models/adabn.pt", weights_only=True)
    assert adabn["model_spec"] == source["model_spec"] and adabn["model_spec"]["bn_protocol"] == "learned"
    changed = {key for key in source["model"] if not torch.equal(source["model"][key], adabn["model"][key])}
    statistics = {key for key in source["model"]
                  if key.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    assert changed == statistics


def test_local_diagnostics_cover_every_model_on_the_dev_images(project):
    diagnostics = json.loads((project / "reports/eval/local_diagnostics.json").read_text())
    assert (diagnostics["split"], diagnostics["window"], diagnostics["conf_threshold"]) == ("dev", 4, 0.9)
    assert list(diagnostics["models"]) == ["source_only", "adabn", "adapted", "oracle", "selftrained",
                                           "selftrain_control"]
    for row in diagnostics["models"].values():
        assert row["cells"] == 2 * (32 // 4) * (64 // 4)  # 2 dev images at 64x32, 4x4 windows
        assert row["kept"] == sum(c["kept"] for c in row["per_class"].values())
        assert row["share_kept"] == row["kept"] / row["cells"]


def test_target_dev_is_disjoint_from_val_and_from_the_adaptation_stream(project):
    lists = project / "data/lists"

    def read(name):
        return (lists / name).read_text().split()

    train, dev, val = read("target_train.txt"), read("target_dev.txt"), read("target_val.txt")
    assert len(dev) == 2 and len(train) == 4  # 6 target train images: 2 held out, 4 adapted on
    assert not set(dev) & set(train) and not set(dev) & set(val)
    every_train = sorted(p.relative_to(project / "data/synthetic/cityscapes/leftImg8bit/train").as_posix()
                         for p in (project / "data/synthetic/cityscapes/leftImg8bit/train").glob("*/*.png"))
    assert sorted(train + dev) == every_train


def test_exported_predictions_are_labelid_pngs_that_the_official_evaluation_agrees_with(project):
    folder = project / "predictions/adapted/labelIds"
    files = sorted(folder.iterdir())
    assert len(files) == 3 and all(f.name.endswith("_leftImg8bit.png") for f in files)
    image = Image.open(files[0])
    assert image.mode == "L" and image.size == (96, 48)  # the label's native resolution
    assert set(np.unique(np.array(image))) <= set(TRAIN_TO_LABEL_ID)
    check = json.loads((project / "reports/eval/official_check.json").read_text())
    assert all(v < 1e-6 for v in check["max_abs_per_class_iou_difference"].values())


def test_every_training_stage_logged_its_losses_with_dvclive(project):
    for run_name, iterations in (("pretrain", 3), ("source_only", 2), ("adapted", 2), ("oracle", 2),
                                 ("selftrained", 2), ("selftrain_control", 2)):
        tsv = project / f"reports/train/{run_name}/plots/metrics/loss_seg/main.tsv"
        rows = tsv.read_text().strip().splitlines()
        assert [int(row.split("\t")[0]) for row in rows[1:]] == list(range(1, iterations + 1)), run_name
    assert (project / "reports/train/adapted/plots/metrics/loss_adv/local_main.tsv").is_file()
    assert not (project / "reports/train/source_only/plots/metrics/loss_adv/local_main.tsv").exists()
    assert (project / "reports/train/selftrained/plots/metrics/loss_pseudo/main.tsv").is_file()
    assert not (project / "reports/train/selftrain_control/plots/metrics/loss_pseudo").exists()


def test_report_embeds_figures_that_exist(project):
    text = (project / "reports/report.md").read_text()
    for figure in ("training_curves", "per_class_iou", "confusion_adapted", "qualitative", "pseudo_labels"):
        assert f"figures/{figure}.png" in text
        assert (project / f"reports/figures/{figure}.png").stat().st_size > 1000
    assert "| adabn |" in text  # the AdaBN row of the local diagnostics, and a column of the IoU table
    assert "| class | source_only | adabn | adapted | selftrained | oracle |" in text  # report.py SHOWN


def test_pipeline_is_up_to_date_after_repro_but_for_the_always_run_fingerprint(project):
    status = run([sys.executable, "-m", "dvc", "status"], project)
    assert status.stdout.split() == ["fingerprint:", "always", "changed"]


def test_repro_of_an_unchanged_workspace_runs_only_the_fingerprint_stage(project):
    again = run([sys.executable, "-m", "dvc", "repro"], project)
    running = [line for line in again.stdout.splitlines() if line.startswith("Running stage")]
    assert running == ["Running stage 'fingerprint':"]


def test_prepare_wrote_the_data_statistics(project):
    summary = json.loads((project / "reports/data/summary.json").read_text())
    assert summary["images"] == {"source": 6, "target_train": 6, "target_val": 3}
    frequencies = json.loads((project / "reports/data/class_frequencies.json").read_text())
    assert [row["class"] for row in frequencies] == list(CLASS_NAMES)
    assert "Class pixel frequencies" in (project / "reports/report.md").read_text()


def test_evaluate_command_on_a_pipeline_checkpoint_gives_the_evaluate_stages_numbers(project, tmp_path):
    out = tmp_path / "scores"
    run([sys.executable, "-m", "globallocal", "evaluate", "models/adapted.pt", "--target-root",
         "data/synthetic/cityscapes", "--split", "val", "--out", str(out), "--size", "64x32",
         "--device", "cpu", "--no-official-check"], project)
    np.testing.assert_array_equal(np.load(out / "confusion.npy"),
                                  np.load(project / "reports/eval/confusion_adapted.npy"))
    stage_metrics = json.loads((project / "reports/metrics.json").read_text())["adapted"]
    assert json.loads((out / "metrics.json").read_text())["miou"] == stage_metrics["miou"]


def test_evaluate_command_scores_every_checkpoint_the_pipeline_wrote_as_the_evaluate_stage_does(project, tmp_path):
    """No --size: each models/*.pt says how it was trained and is scored at the stage's size and protocol."""
    stage_metrics = json.loads((project / "reports/metrics.json").read_text())
    checkpoints = sorted(path.stem for path in (project / "models").glob("*.pt"))
    assert set(checkpoints) == set(stage_metrics) | {"pretrain"}  # pretrain.pt is the one the stage does not score
    for name in checkpoints:
        result = run([sys.executable, "-m", "globallocal", "evaluate", f"models/{name}.pt", "--target-root",
                      "data/synthetic/cityscapes", "--split", "val", "--out", str(tmp_path / name),
                      "--device", "cpu", "--no-official-check"], project)
        assert result.stdout.splitlines()[0] == "note: scored at 64x32, the size it was trained at (--size to change)"
        scored = json.loads((tmp_path / name / "metrics.json").read_text())
        assert scored["size"] == [64, 32], name
        if name in stage_metrics:
            assert {key: scored[key] for key in stage_metrics[name]} == stage_metrics[name], name


def test_bad_param_stops_the_first_stage_with_one_clear_line(project, tmp_path):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["adapt"]["global_family"] = "cycada"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        result = run([sys.executable, "pipeline/prepare.py"], project, check=False)
    finally:
        (project / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    assert result.returncode == 2
    assert "adapt.global_family" in result.stderr and "Traceback" not in result.stderr


#: Runs evaluate, killing it with SIGKILL as it is about to write its KILL_AT-th PNG.
KILL_DURING_EVALUATE = """
import os, runpy, signal, sys
from PIL import Image
kill_at, written = int(sys.argv[1]), [0]
save = Image.Image.save
def killing_save(self, *args, **kwargs):
    written[0] += 1
    if written[0] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return save(self, *args, **kwargs)
Image.Image.save = killing_save
sys.argv = ["pipeline/evaluate.py"]
runpy.run_path("pipeline/evaluate.py", run_name="__main__")
"""


def files_of(folder: Path) -> dict[str, bytes] | None:
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_killing_evaluate_leaves_the_previous_outputs_or_none_and_repro_completes(project):
    outputs = ("predictions", "reports/eval", "reports/metrics.json")
    before = {name: files_of(project / name) if (project / name).is_dir() else (project / name).read_bytes()
              for name in outputs}
    kill_at = random.randrange(1, 3 * 3 * 2 + 1)  # any of the 3 models' 3 labelId + 3 colour PNGs

    result = run([sys.executable, "-c", KILL_DURING_EVALUATE, str(kill_at)], project, check=False)

    assert result.returncode == -9, result.stderr[-2000:]
    for name, previous in before.items():
        path = project / name
        now = files_of(path) if path.is_dir() else (path.read_bytes() if path.exists() else None)
        assert now in (previous, None), f"{name} is partial after a kill at PNG {kill_at}"
    run([sys.executable, "-m", "dvc", "repro"], project)
    status = run([sys.executable, "-m", "dvc", "status"], project).stdout
    assert status.split() == ["fingerprint:", "always", "changed"]  # the always-run stage, nothing else
    assert (project / "reports/metrics.json").read_bytes() == before["reports/metrics.json"]


def copy_of(project: Path, tmp_path: Path, **selftrain) -> Path:
    """A copy of the reproduced project whose params.yaml has ``selftrain`` overrides."""
    root = tmp_path / "copy"
    shutil.copytree(project, root, ignore=shutil.ignore_patterns(".dvc", ".git"))
    params = tiny_params()
    params["selftrain"].update(selftrain)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def test_selftrain_with_zero_iterations_writes_a_copy_of_the_adapted_model_and_the_report_still_runs(project, tmp_path):
    root = copy_of(project, tmp_path, iterations=0)
    run([sys.executable, "pipeline/selftrain.py"], root)
    run([sys.executable, "pipeline/selftrain.py", "--control"], root)
    adapted = torch.load(root / "models/adapted.pt", weights_only=True)
    for name in ("selftrained", "selftrain_control"):
        copy = torch.load(root / f"models/{name}.pt", weights_only=True)
        assert copy.keys() == adapted.keys(), name  # described like every checkpoint, training state kept
        assert all(torch.equal(copy["model"][key], value) for key, value in adapted["model"].items()), name
        assert (copy["target_size"], copy["iteration"]) == ([64, 32], adapted["iteration"]), name
    for name in ("selftrained", "selftrain_control"):  # not empty, or every dvc command warns about it
        assert [path.name for path in (root / f"reports/train/{name}").iterdir()] == ["NOT_TRAINED.txt"]
    run([sys.executable, "pipeline/report.py"], root)  # no training log of the two copies: curves leave them out
    assert (root / "reports/figures/training_curves.png").is_file()


def test_selftrain_refuses_a_target_train_list_that_holds_a_dev_image(project, tmp_path):
    root = copy_of(project, tmp_path)
    dev = (root / "data/lists/target_dev.txt").read_text().split()
    with (root / "data/lists/target_train.txt").open("a") as handle:
        handle.write(dev[0] + "\n")
    result = run([sys.executable, "pipeline/selftrain.py"], root, check=False)
    assert result.returncode == 2 and "held-out target dev/val" in result.stderr
    assert "Traceback" not in result.stderr


def test_selftrain_diagnostics_score_the_pseudo_labels_of_target_train_and_show_dev_images(project):
    diagnostics = json.loads((project / "reports/selftrain/pseudo_labels.json").read_text())
    assert list(diagnostics["per_class"]) == list(CLASS_NAMES)
    assert 0 < diagnostics["kept_share"] <= 100
    with np.load(project / "reports/selftrain/dev_samples.npz") as arrays:
        dev = (project / "data/lists/target_dev.txt").read_text().split()
        assert list(arrays["names"]) == dev[:2] and arrays["pseudo_0"].shape == (32, 64)
