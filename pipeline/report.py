"""Stage `report`: PNG figures (matplotlib) and reports/report.md embedding them."""

import csv
import json
from pathlib import Path

import numpy as np

from globallocal import config
from globallocal.data.labels import CLASS_NAMES
from globallocal.reporting import (
    ablation_table,
    class_frequency_table,
    load_dev_samples,
    plot_ablation,
    plot_class_frequencies,
    plot_confusion,
    plot_per_class_iou,
    plot_pseudo_labels,
    plot_qualitative,
    plot_training_curves,
    selftrain_note,
    selftrain_table,
    write_report,
)
from globallocal.stage_runner import run_stage

REPORTS = Path("reports")
FIGURES = REPORTS / "figures"
EVAL_DIR = REPORTS / "eval"
TRAIN_LOGS = REPORTS / "train"
ABLATION = REPORTS / "ablation.csv"
SELFTRAIN_DIR = REPORTS / "selftrain"
RUNS = ("pretrain", "source_only", "adapted", "selftrained", "selftrain_control", "oracle")
SELFTRAIN_RUNS = ("selftrained", "selftrain_control")
COMPARED = ("source_only", "adabn", "adapted", "oracle")
#: The models of the tables and figures: the compared ones and the self-trained model.
SHOWN = ("source_only", "adabn", "adapted", "selftrained", "oracle")
CURVE_SMOOTHING = 3


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


def gap_sentence(metrics: dict) -> str:
    """Where the adapted model stands between source-only and the oracle."""
    low, mid, high = (metrics[m]["miou"] for m in ("source_only", "adapted", "oracle"))
    gap = high - low
    recovered = f"{100 * (mid - low) / gap:.0f}%" if gap > 0 else "n/a"
    return (
        f"Source-only {low:.2f}, adapted {mid:.2f}, oracle {high:.2f} mIoU: adaptation changes mIoU by "
        f"{mid - low:+.2f} points, {recovered} of the source-only-to-oracle gap ({gap:.2f} points)."
    )


def setup_note(params: config.Params) -> str:
    data, model = params.data, params.model
    alignment = params.alignment_config()
    synthetic = params.synthetic_config()
    dataset = (
        f"the embedded synthetic benchmark (seed {synthetic.seed}; {synthetic.num_source} source, "
        f"{synthetic.num_target_train} target train, {synthetic.num_target_val} target val images"
        + (f"; target shift `{synthetic.shift}` at severity {synthetic.shift_severity}" if synthetic.shift != "none"
           else "") + ")"
        if synthetic else f"{data.source} at `{data.source_root}` -> Cityscapes at `{data.target_root}`"
    )
    return (
        f"Data: {dataset}. Network: `{model.arch}` (output stride {model.output_stride}, BatchNorm "
        f"{model.bn_protocol}), source at {data.source_size[0]}x{data.source_size[1]}, target at "
        f"{data.target_size[0]}x{data.target_size[1]}, batch {params.train.batch_size} per domain, "
        f"training seed {params.seed}.\n\n"
        f"Adaptation: global family `{alignment.global_family}` ({alignment.gan_loss} GAN loss, "
        f"lambda main {alignment.global_weight('main')}, aux {alignment.global_weight('aux')}) + local "
        f"alignment (lambda {alignment.lambda_adv_local}, window {alignment.local.window}, representation "
        f"`{alignment.local.representation}`, target confidence >= {alignment.local.conf_threshold}, "
        f"start at iteration {alignment.local_start_iter}).\n\n"
        "All numbers are the FINAL models of each stage (no snapshot selection on the val set)."
    )


def fairness_note(params: config.Params, metrics: dict) -> str:
    pre, ada, ora = params.pretrain.iterations, params.adapt.iterations, params.oracle.iterations
    return (
        f"`adapted` = {pre} source-only iterations (`pretrain`) + {ada} adaptation iterations. `source_only` "
        f"starts from the same pretrained weights and runs the same {ada}-iteration schedule with every "
        f"alignment weight at 0, so both had {pre + ada} source-supervised iterations. They differ by the "
        f"alignment terms and by the target batches `adapt` forwards in training mode: with learned "
        f"BatchNorm its running statistics follow the target, which on the embedded benchmark is the whole "
        f"gain (docs/experiments.md, main table). `adabn` is `source_only` with its BatchNorm statistics "
        f"re-estimated on the target train images, no gradient step: the adaptation target statistics alone "
        f"give, the baseline alignment has to beat. `oracle` is trained on target train labels for {ora} "
        f"iterations from the same initialisation as `pretrain`.\n\n" + gap_sentence(metrics)
    )


def read_ablation(path: Path) -> list[dict]:
    """The rows of reports/ablation.csv (written by `python -m globallocal.experiments ablation`), numbers
    parsed; a file without the ``selftrain`` column holds adapted models only (selftrain 0)."""
    with path.open(newline="") as handle:
        return [
            {"family": row["family"], "local": int(row["local"]), "seed": int(row["seed"]),
             "val_miou": float(row["val_miou"]), "dev_miou": float(row["dev_miou"]),
             "selftrain": int(row.get("selftrain") or 0),
             "control_val_miou": row.get("control_val_miou", ""), "control_dev_miou": row.get("control_dev_miou", ""),
             "bn": row.get("bn") or "learned", "shift": row.get("shift") or "none",
             "setting": row.get("setting") or "committed"}
            for row in csv.DictReader(handle)
        ]


def with_control(scores: dict, diagnostics: dict) -> dict:
    """``scores`` with the self-training control's; absent (selftrain.iterations 0), it is the start model's."""
    start = Path(diagnostics["start"]).stem
    return scores if "selftrain_control" in scores else {**scores, "selftrain_control": scores[start]}


def rows_of_this_cell(rows: list[dict], params) -> list[dict]:
    """The rows measured on the benchmark cell and BatchNorm protocol this params.yaml runs, at the committed
    weights; other cells' rows (the shift grid's selected cell, docs/shift_grid.md) and other settings
    (``ablation --tag``) are tabulated in reports/ablation_*.md."""
    shift = params.prepare.shift
    cell = "none" if shift == "none" else f"{shift}-{params.prepare.shift_severity}"
    return [row for row in rows if row["shift"] == cell and row["bn"] == params.model.bn_protocol
            and row["setting"] == "committed"]


def ablation_note(rows: list[dict]) -> str:
    if not rows:
        return ("`reports/ablation.csv` holds no runs yet: `python -m globallocal.experiments ablation --seeds 0 1 2` "
                "writes it.")
    seeds = sorted({row["seed"] for row in rows})
    return (
        f"Adapted mIoU (%) over training seeds {seeds}, from `reports/ablation.csv` (one row per run), "
        "measured by `python -m globallocal.experiments ablation --seeds 0 1 2` (DVC experiments of this "
        "commit's code, each job single-threaded, so a seed's numbers differ slightly from the single "
        "`dvc repro` above). `global + local` uses the committed (dev-selected) local settings, `global only` "
        "the same run with `adapt.lambda_adv_local=0`; the paired difference is per seed.\n\n" + ablation_table(rows)
    )


def local_diagnostics_note(diagnostics: dict) -> str:
    """What the local term's target filter keeps on dev, and how often the kept pseudo-class is right."""
    lines = [
        f"The local term's target filter (window {diagnostics['window']}, confidence >= "
        f"{diagnostics['conf_threshold']}) applied to each model's main head on the dev images; precision = "
        "share of kept local outputs whose pseudo-class is the cell's ground-truth majority class "
        f"(min purity {diagnostics['min_purity']}). From `reports/eval/local_diagnostics.json`, which also "
        "has it per class.",
        "",
        "| model | share kept | precision |",
        "|---|---:|---:|",
    ]
    for model, row in diagnostics["models"].items():
        share = "—" if row["share_kept"] is None else f"{100 * row['share_kept']:.1f}%"
        precision = "—" if row["precision"] is None else f"{100 * row['precision']:.1f}%"
        lines.append(f"| {model} | {share} | {precision} |")
    return "\n".join(lines)


def dev_note(params: config.Params, dev_metrics: dict) -> str:
    """The dev-split mIoU of each model: the numbers every choice of this project is made on."""
    size, seed = params.prepare.dev_size, params.prepare.dev_seed
    scores = ", ".join(f"{m} {dev_metrics[m]['miou']:.2f}" for m in COMPARED)
    return (
        f"{size} labelled target-train images (drawn with seed {seed}, listed in `data/lists/target_dev.txt`) are "
        f"held out of the unlabelled adaptation stream and of the oracle's training set. Every hyperparameter "
        f"and variant is chosen on them, never on val. mIoU on dev: {scores}."
    )


def main() -> None:
    params = config.load_validated_params()
    headline = json.loads((REPORTS / "metrics.json").read_text())
    headline_dev = json.loads((REPORTS / "metrics_dev.json").read_text())
    per_class = json.loads((REPORTS / "per_class_iou.json").read_text())
    # The report's tables and figures take {model: {"miou": ..., "per_class_iou": {...}}}.
    metrics = {m: {**headline[m], "per_class_iou": per_class[m]} for m in SHOWN}
    FIGURES.mkdir(parents=True, exist_ok=True)
    figures = {
        "Training curves (moving average of the logged means)": FIGURES / "training_curves.png",
        "Per-class IoU on target val": FIGURES / "per_class_iou.png",
        "Confusion matrix of the adapted model (row-normalised)": FIGURES / "confusion_adapted.png",
        "Confusion matrix of the source-only model (row-normalised)": FIGURES / "confusion_source_only.png",
        "Target val samples: predictions and entropy maps": FIGURES / "qualitative.png",
        "Class pixel frequencies of the source and target train labels": FIGURES / "class_frequencies.png",
        "Pseudo-labels of the self-training start model beside the ground truth on dev images (figure only; "
        "dev is never trained on)": FIGURES / "pseudo_labels.png",
    }
    paths = list(figures.values())
    # With selftrain.iterations 0 the two self-training stages copy their start model and log nothing.
    self_trained = params.selftrain.iterations > 0
    runs = [run for run in RUNS if self_trained or run not in SELFTRAIN_RUNS]
    plot_training_curves({run: TRAIN_LOGS / run for run in runs}, paths[0], smoothing=CURVE_SMOOTHING)
    plot_per_class_iou(metrics, paths[1], models=SHOWN)
    for model_name, path in (("adapted", paths[2]), ("source_only", paths[3])):
        confusion = np.load(EVAL_DIR / f"confusion_{model_name}.npy")
        plot_confusion(confusion, CLASS_NAMES, path, title=f"{model_name} (rows: ground truth)")
    plot_qualitative(load_qualitative(EVAL_DIR / "qualitative.npz", SHOWN), paths[4], models=SHOWN)
    frequencies = json.loads((REPORTS / "data/class_frequencies.json").read_text())  # written by prepare
    plot_class_frequencies(frequencies, paths[5])
    plot_pseudo_labels(load_dev_samples(SELFTRAIN_DIR / "dev_samples.npz"), paths[6])
    diagnostics = json.loads((SELFTRAIN_DIR / "pseudo_labels.json").read_text())
    all_rows = rows_of_this_cell(read_ablation(ABLATION), params)
    # The weight-0 run and AdaBN are reference rows of the alignment table, not global families.
    ablation_rows = [row for row in all_rows if not row["selftrain"] and row["family"] not in ("none", "adabn")]
    if ablation_rows:
        caption = "Global families with and without local alignment (target val, mean and std over seeds)"
        figures[caption] = FIGURES / "ablation.png"
        plot_ablation(ablation_rows, figures[caption])
    official = json.loads((EVAL_DIR / "official_check.json").read_text())
    notes = {
        "setup": setup_note(params),
        "fairness": fairness_note(params, metrics),
        "official evaluation": (
            "The exported labelId PNGs (`predictions/<model>/labelIds`) were scored again with "
            "cityscapesscripts' pixel-level evaluation; largest per-class IoU difference to the table "
            "above (points): "
            + ", ".join(f"{m} {v:.2g}" for m, v in official["max_abs_per_class_iou_difference"].items())
            + "."
        ),
        "held-out target dev split": dev_note(params, headline_dev),
        "local term diagnostics (target dev)": local_diagnostics_note(
            json.loads((EVAL_DIR / "local_diagnostics.json").read_text())
        ),
        # With selftrain.iterations 0 evaluate does not score the control: it is the start model's copy.
        "Self-training": selftrain_note(with_control(headline, diagnostics) | {"dev": with_control(headline_dev, diagnostics)},
                                        diagnostics,
                                        params.selftrain.iterations)
        + ("\n\nOver seeds (`reports/ablation.csv`, `selftrain = 1` rows; control = the same iterations without "
           "the pseudo-label loss):\n\n" + selftrain_table(all_rows) if any(r["selftrain"] for r in all_rows) else ""),
        "global families with and without local alignment": ablation_note(ablation_rows),
        "Data statistics": "Share of labelled pixels per class (`prepare` counts them; counts and findings in "
                "`reports/data/`):\n\n" + class_frequency_table(frequencies),
        "reproduce": "```\nmake repro        # or: .venv/bin/dvc repro\n```",
    }
    write_report(REPORTS / "report.md", {m: metrics[m] for m in SHOWN}, figures, notes)


if __name__ == "__main__":
    run_stage(main)
