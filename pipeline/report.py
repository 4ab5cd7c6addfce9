"""Stage `report`: PNG figures (matplotlib) and reports/report.md embedding them. It reads what the stages
wrote and hands it to the reporting package, whose prose speaks of what ran (globallocal.reporting.prose)."""

import json
from pathlib import Path

import numpy as np

from globallocal import config
from globallocal.data.labels import CLASS_NAMES
from globallocal.reporting import (
    class_frequency_table,
    load_dev_samples,
    plot_ablation,
    plot_class_frequencies,
    plot_confusion,
    plot_per_class_iou,
    plot_pseudo_labels,
    plot_qualitative,
    plot_training_curves,
    prose,
    selftrain_note,
    selftrain_table,
    write_report,
)
from globallocal.reporting.ablation import ABLATION_FILE, backbone_name, cell_name, read_ablation, rows_of_cell
from globallocal.stage_runner import run_stage

REPORTS = Path("reports")
FIGURES = REPORTS / "figures"
EVAL_DIR = REPORTS / "eval"
TRAIN_LOGS = REPORTS / "train"
SELFTRAIN_DIR = REPORTS / "selftrain"
RUNS = ("pretrain", "source_only", "adapted", "selftrained", "selftrain_control", "oracle")
SELFTRAIN_RUNS = ("selftrained", "selftrain_control")
#: The models of the tables and figures: the compared ones and the self-trained model.
SHOWN = ("source_only", "adabn", "adapted", "selftrained", "oracle")
CURVE_SMOOTHING = 3


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def load_qualitative(path: Path, models: tuple[str, ...]) -> list[dict]:
    """The samples evaluate saved, in the shape reporting.plot_qualitative takes."""
    with np.load(path) as arrays:
        return [
            {
                "name": str(name),
                "image": arrays[f"image_{i}"],
                "label": arrays[f"label_{i}"],
                "preds": {m: arrays[f"pred_{m}_{i}"] for m in models},
                "entropy": {m: arrays[f"entropy_{m}_{i}"].astype(np.float32) for m in models},
            }
            for i, name in enumerate(arrays["names"])
        ]


def draw_figures(params: config.Params, metrics: dict, cell_rows: list[dict]) -> dict[str, Path]:
    """Every figure of the report, each under its caption; all of them are written (dvc.yaml lists them)."""
    figures = {
        "Training curves (moving average of the logged means)": FIGURES / "training_curves.png",
        "Per-class IoU on target val": FIGURES / "per_class_iou.png",
        "Confusion matrix of the adapted model on target val (row-normalised)": FIGURES / "confusion_adapted.png",
        "Confusion matrix of the source-only model on target val (row-normalised)":
            FIGURES / "confusion_source_only.png",
        "Target val samples: predictions and entropy maps": FIGURES / "qualitative.png",
        "Class pixel frequencies of the source and target train labels": FIGURES / "class_frequencies.png",
        "Pseudo-labels of the self-training start model beside the ground truth on dev images (figure only; "
        "dev is never trained on)": FIGURES / "pseudo_labels.png",
        "Global families with and without local alignment (target val, over seeds)": FIGURES / "ablation.png",
    }
    paths = list(figures.values())
    FIGURES.mkdir(parents=True, exist_ok=True)
    # With selftrain.iterations 0 the two self-training stages copy their start model and log nothing.
    runs = [run for run in RUNS if params.selftrain.iterations > 0 or run not in SELFTRAIN_RUNS]
    plot_training_curves({run: TRAIN_LOGS / run for run in runs}, paths[0], smoothing=CURVE_SMOOTHING)
    plot_per_class_iou(metrics, paths[1], models=SHOWN)
    for model_name, path in (("adapted", paths[2]), ("source_only", paths[3])):
        plot_confusion(np.load(EVAL_DIR / f"confusion_{model_name}.npy"), CLASS_NAMES, path,
                       title=f"{model_name} on target val (rows: ground truth, %)")
    plot_qualitative(load_qualitative(EVAL_DIR / "qualitative.npz", SHOWN), paths[4], models=SHOWN)
    plot_class_frequencies(read_json(REPORTS / "data/class_frequencies.json"), paths[5])
    plot_pseudo_labels(load_dev_samples(SELFTRAIN_DIR / "dev_samples.npz"), paths[6])
    plot_ablation(cell_rows, paths[7])
    return figures


def main() -> None:
    params = config.load_validated_params()
    headline = read_json(REPORTS / "metrics.json")
    headline_dev = read_json(REPORTS / "metrics_dev.json")
    per_class = read_json(REPORTS / "per_class_iou.json")
    # The report's tables and figures take {model: {"miou": ..., "per_class_iou": {...}}}.
    metrics = {m: {**headline[m], "per_class_iou": per_class[m]} for m in SHOWN}
    cell = cell_name(params.prepare.shift, params.prepare.shift_severity)
    all_rows = read_ablation(ABLATION_FILE)
    # Today's cell in today's regime: rows of other statistics settings or backbones are other experiments.
    cell_rows = rows_of_cell(all_rows, cell, params.model.bn_protocol, stats=params.adapt.bn_stats,
                             backbone=backbone_name(params.model.arch, params.model.backbone_weights))
    # The weight-0 run and AdaBN are reference rows of the alignment table, not global families.
    family_rows = [row for row in cell_rows if not row["selftrain"] and row["family"] not in ("none", "adabn")]
    figures = draw_figures(params, metrics, family_rows)
    diagnostics = read_json(SELFTRAIN_DIR / "pseudo_labels.json")
    start = prose.start_model(diagnostics)
    selftrain_rows = [row for row in cell_rows if row["selftrain"]]
    notes = {
        "setup": prose.setup_note(params),
        "fairness": prose.fairness_note(params, headline),
        "official evaluation": prose.official_note(read_json(EVAL_DIR / "official_check.json")),
        "held-out target dev split": prose.dev_note(params, headline_dev),
        "local term diagnostics (target dev)": prose.local_diagnostics_note(
            read_json(EVAL_DIR / "local_diagnostics.json")),
        # With selftrain.iterations 0 evaluate does not score the control: it is the start model's copy.
        "Self-training": selftrain_note(
            prose.with_control(headline, start) | {"dev": prose.with_control(headline_dev, start)},
            diagnostics, params.selftrain.iterations)
        + ("\n\nOver seeds (`reports/ablation.csv`, `selftrain = 1` rows; control = the same iterations without "
           "the pseudo-label loss):\n\n" + selftrain_table(selftrain_rows) if selftrain_rows else ""),
        "global families with and without local alignment": prose.ablation_note(
            family_rows, all_rows, cell, params.model.bn_protocol),
        "fair game goals": prose.goals_note(all_rows, params.model.bn_protocol, params.adapt.bn_stats,
                                            backbone_name(params.model.arch, params.model.backbone_weights)),
        "Data statistics": "Share of labelled pixels per class (`prepare` counts them; counts and findings in "
                           "`reports/data/`):\n\n"
                           + class_frequency_table(read_json(REPORTS / "data/class_frequencies.json")),
        "reproduce": "```\nmake repro        # or: .venv/bin/dvc repro\n```",
    }
    write_report(REPORTS / "report.md", {m: metrics[m] for m in SHOWN}, figures, notes)


if __name__ == "__main__":
    run_stage(main)
