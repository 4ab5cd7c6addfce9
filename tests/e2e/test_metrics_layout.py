"""`dvc metrics show` on the committed repository: the six headline numbers, in a terminal's width."""

import json
import subprocess
import sys

import yaml

from support.tiny_project import REPO

#: The widest a terminal shows without wrapping, as the README promises for `dvc metrics show`.
MAX_COLUMNS = 120
#: The headline models of the default (selftrain.iterations 0: the control, the adapted model's copy, is not scored).
MODELS = ["adabn", "adapted", "oracle", "selftrained", "source_only"]


def dvc(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout


def test_metrics_show_prints_val_and_dev_miou_of_the_headline_models_within_120_columns():
    lines = dvc("metrics", "show").splitlines()

    assert max(len(line.rstrip()) for line in lines) <= MAX_COLUMNS
    header, *rows = [line.split() for line in lines]
    assert header == ["Path"] + [f"{m}.miou" for m in MODELS]
    val = json.loads((REPO / "reports/metrics.json").read_text())
    dev = json.loads((REPO / "reports/metrics_dev.json").read_text())
    expected = {
        "reports/metrics.json": [str(val[m]["miou"]) for m in MODELS],
        "reports/metrics_dev.json": [str(dev[m]["miou"]) for m in MODELS],
    }
    assert {row[0]: row[1:] for row in rows} == expected


def test_val_and_dev_metrics_hold_the_same_keys_so_they_share_columns():
    val = json.loads((REPO / "reports/metrics.json").read_text())
    dev = json.loads((REPO / "reports/metrics_dev.json").read_text())

    assert list(val) == list(dev) and sorted(val) == MODELS
    assert all(list(val[m]) == list(dev[m]) == ["miou"] for m in MODELS)


def test_per_class_iou_and_timings_are_files_to_ask_for_by_name_not_declared_metrics():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())
    declared = [next(iter(entry)) if isinstance(entry, dict) else entry
                for stage in stages["stages"].values() for entry in stage.get("metrics", [])]
    declared += stages.get("metrics", [])

    assert declared == ["reports/metrics.json", "reports/metrics_dev.json"]
    by_name = dvc("metrics", "show", "reports/per_class_iou.json").splitlines()[0].split()
    assert "adapted.road" in by_name


def test_the_selftrained_copy_carries_its_start_models_scores_at_zero_iterations():
    # selftrain.iterations 0: `selftrained` is the start model's copy; evaluate takes its scores over
    params = yaml.safe_load((REPO / "params.yaml").read_text())["selftrain"]
    assert params["iterations"] == 0
    start = params["start"]
    probe = json.loads((REPO / "reports/probe_auc.json").read_text())["models"]
    for name in ("reports/metrics.json", "reports/metrics_dev.json", "reports/per_class_iou.json"):
        scores = json.loads((REPO / name).read_text())
        assert scores["selftrained"] == scores[start], name
    assert probe["selftrained"] == probe[start]
