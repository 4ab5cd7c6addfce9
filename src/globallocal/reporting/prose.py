"""The report's prose: each note of reports/report.md built from the params and the metrics the stages
wrote. It speaks of what ran: the BatchNorm protocol, the benchmark or the real datasets, SYNTHIA's
16-class headline, and the rows reports/ablation.csv holds for this cell."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from globallocal.reporting.ablation import ABLATION_FILE, rows_of_regime
from globallocal.reporting.goals import GOALS, goals_by_setting
from globallocal.reporting.inputs import MISSING_VALUE
from globallocal.reporting.sweeps import ablation_table
from globallocal.reporting.tables import markdown_table

if TYPE_CHECKING:  # the notes read the typed params tree; the reporting package does not build it
    from globallocal.config import Params

#: The models every note compares, in the report's order.
COMPARED = ("source_only", "adabn", "adapted", "oracle")
#: What a sentence about the target batches says, per BatchNorm protocol (models/normalization.py).
_BATCHNORM_EFFECT = {
    "learned": "with learned BatchNorm its running statistics follow the target (as AdaBN's do)",
    "reference": "with the reference code's BatchNorm (affine frozen, running statistics still updated in "
                 "training mode, as in ADVENT) its running statistics follow the target too",
    "frozen": "with frozen BatchNorm the statistics stay the source's, so the two differ by the alignment terms",
}


def headline_key(params: Params) -> tuple[str, str]:
    """The metrics key a summary leads with and its name: mIoU-16 for SYNTHIA (the paper's protocol), mIoU else."""
    return ("miou_16", "mIoU-16") if params.data.source == "synthia" else ("miou", "mIoU")


def gap_sentence(params: Params, metrics: Mapping) -> str:
    """Where the adapted model stands between source-only and the oracle, on the headline metric."""
    key, name = headline_key(params)
    low, mid, high = (metrics[m][key] for m in ("source_only", "adapted", "oracle"))
    gap = high - low
    recovered = f"{100 * (mid - low) / gap:.0f}%" if gap > 0 else "n/a"
    return (
        f"Source-only {low:.2f}, adapted {mid:.2f}, oracle {high:.2f} {name}: adaptation changes {name} by "
        f"{mid - low:+.2f} points, {recovered} of the source-only-to-oracle gap ({gap:.2f} points)."
    )


def dataset_sentence(params: Params) -> str:
    synthetic, data = params.synthetic_config(), params.data
    if synthetic is None:
        return f"{data.source} at `{data.source_root}` -> Cityscapes at `{data.target_root}`"
    shift = (f"; target shift `{synthetic.shift}` at severity {synthetic.shift_severity}"
             if synthetic.shift != "none" else "")
    return (f"the embedded synthetic benchmark (seed {synthetic.seed}; {synthetic.num_source} source, "
            f"{synthetic.num_target_train} target train, {synthetic.num_target_val} target val images{shift})")


def setup_note(params: Params) -> str:
    data, model, alignment = params.data, params.model, params.alignment_config()
    return (
        f"Data: {dataset_sentence(params)}. Network: `{model.arch}` (output stride {model.output_stride}, "
        f"BatchNorm {model.bn_protocol}), source at {data.source_size[0]}x{data.source_size[1]}, target at "
        f"{data.target_size[0]}x{data.target_size[1]}, batch {params.train.batch_size} per domain, "
        f"training seed {params.seed}.\n\n"
        f"Adaptation: global family `{alignment.global_family}` ({alignment.gan_loss} GAN loss, "
        f"lambda main {alignment.global_weight('main')}, aux {alignment.global_weight('aux')}) + local "
        f"alignment (lambda {alignment.lambda_adv_local}, window {alignment.local.window}, representation "
        f"`{alignment.local.representation}`, target confidence >= {alignment.local.conf_threshold}, "
        f"start at iteration {alignment.local_start_iter}).\n\n"
        "All numbers are the FINAL models of each stage (no snapshot selection on the val set)."
    )


def fairness_note(params: Params, metrics: Mapping) -> str:
    pre, ada, ora = params.pretrain.iterations, params.adapt.iterations, params.oracle.iterations
    protocol = "group" if params.model.norm == "group" else params.model.bn_protocol
    effect = _BATCHNORM_EFFECT.get(protocol, "with GroupNorm there are no running statistics to follow the target")
    return (
        f"`adapted` = {pre} source-only iterations (`pretrain`) + {ada} adaptation iterations. `source_only` "
        f"starts from the same pretrained weights and runs the same {ada}-iteration schedule with every "
        f"alignment weight at 0, so both had {pre + ada} source-supervised iterations. They differ by the "
        f"alignment terms and by the target batches `adapt` forwards in training mode: {effect}. `adabn` is "
        f"`source_only` with its BatchNorm statistics re-estimated on the target train images and no gradient "
        f"step: what target statistics alone give, the baseline that alignment has to beat. `oracle` is "
        f"trained on target train labels for {ora} iterations from the same initialisation as `pretrain`.\n\n"
        + gap_sentence(params, metrics)
    )


def official_note(official: Mapping) -> str:
    differences = official["max_abs_per_class_iou_difference"]
    return (
        "The exported labelId PNGs (`predictions/<model>/labelIds`) were scored again with cityscapesscripts' "
        "pixel-level evaluation; largest per-class IoU difference to the table above (points): "
        + ", ".join(f"{model} {value:.2g}" for model, value in differences.items()) + "."
    )


def dev_note(params: Params, dev_metrics: Mapping) -> str:
    """The dev-split scores of each model: the numbers every choice of this project is made on."""
    key, name = headline_key(params)
    size, seed = params.prepare.dev_size, params.prepare.dev_seed
    scores = ", ".join(f"{m} {dev_metrics[m][key]:.2f}" for m in COMPARED)
    return (
        f"{size} labelled target-train images (drawn with seed {seed}, listed in `data/lists/target_dev.txt`) are "
        f"held out of the unlabelled adaptation stream and of the oracle's training set. Every hyperparameter "
        f"and variant is chosen on them, never on val. {name} on dev: {scores}."
    )


def local_diagnostics_note(diagnostics: Mapping) -> str:
    """What the local term's target filter keeps on dev, and how often the kept pseudo-class is right."""
    def percent(value) -> str:
        return MISSING_VALUE if value is None else f"{100 * value:.1f}%"

    body = [[model, percent(row["share_kept"]), percent(row["precision"])]
            for model, row in diagnostics["models"].items()]
    return (
        f"The local term's target filter (window {diagnostics['window']}, confidence >= "
        f"{diagnostics['conf_threshold']}) applied to each model's main head on the dev images; precision = "
        "share of kept local outputs whose pseudo-class is the cell's ground-truth majority class "
        f"(min purity {diagnostics['min_purity']}). From `reports/eval/local_diagnostics.json`, which also "
        "has it per class.\n\n" + markdown_table(["model", "share kept", "precision"], "lrr", body)
    )


def ablation_note(cell_rows: list[dict], all_rows: list[dict], cell: str, bn: str) -> str:
    """The main table of this cell over seeds, or what reports/ablation.csv holds instead."""
    command = "`python -m globallocal.experiments ablation --seeds 0 1 2`"
    if not cell_rows:
        if not all_rows:
            return f"`{ABLATION_FILE}` holds no runs yet: {command} writes it."
        return (f"`{ABLATION_FILE}` holds no rows for this cell (shift `{cell}`, BatchNorm `{bn}`, committed "
                f"weights, today's statistics setting and backbone); its {len(all_rows)} rows of other cells "
                f"and settings are tabulated in `reports/ablation_*.md`. {command} with this params.yaml adds "
                "this cell's.")
    seeds = sorted({row["seed"] for row in cell_rows})
    return (
        f"Adapted mIoU (%) over training seeds {seeds}, from `{ABLATION_FILE}` (one row per run), measured by "
        f"{command} (DVC experiments of this commit's code, each job single-threaded, so a seed's numbers "
        "differ slightly from the single `dvc repro` above). `global + local` uses the committed (dev-selected) "
        "local settings, `global only` the same run with `adapt.lambda_adv_local=0`; the paired difference is "
        "per seed.\n\n" + ablation_table(cell_rows)
    )


def goals_note(all_rows: list[dict], bn: str, stats: str, backbone: str) -> str:
    """The fair game's goals, seed by seed, on the rows of every cell the goals name that ran with this
    BatchNorm protocol, statistics setting and backbone: the committed weights', then other settings'."""
    rows = rows_of_regime(all_rows, bn, stats, backbone)
    regime = f"BatchNorm `{bn}`, statistics `{stats}`, backbone `{backbone}`"
    cells = {shift for goal in GOALS for shift in goal.cells}
    if not any(row["shift"] in cells for row in rows):
        return (f"`{ABLATION_FILE}` holds no study rows for {regime}: `python -m globallocal.experiments ablation` "
                "on the default cell, `swap-3` and `scale-1` (docs/fair_game.md, section 5) writes them.")
    return (f"The goals of docs/fair_game.md (section 5), fixed before the study ran, checked on every seed of "
            f"`{ABLATION_FILE}` ({regime}); model - baseline in val mIoU points (the probe: AUC), its mean and 95% "
            "t-interval over seeds:\n\n" + goals_by_setting(rows))


def with_control(scores: Mapping, start: str) -> dict:
    """``scores`` with the self-training control's; absent (selftrain.iterations 0), it is the start model's."""
    return dict(scores) if "selftrain_control" in scores else {**scores, "selftrain_control": scores[start]}


def start_model(diagnostics: Mapping) -> str:
    """The model self-training started from (reports/selftrain/pseudo_labels.json's ``start``)."""
    return Path(diagnostics["start"]).stem
