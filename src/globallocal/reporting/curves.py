"""The report's training curves: every scalar the dvclive logs of the training stages hold, one panel per
metric group (``loss_seg``, ``d_out``, ``lr``, ...), one line per run and metric.

dvclive logs: ``<run_dir>/plots/metrics/<group>/<name>.tsv`` with columns ``step`` and ``<name>``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from globallocal.errors import UserError
from globallocal.reporting.figures import LEGEND_FONT_SIZE_PT, new_figure, save_png

#: Curve groups whose values span orders of magnitude (each term's gradient norm on its output).
LOG_SCALE_GROUPS = ("grad_norm",)
CURVE_PANEL_WIDTH_PX = 640
CURVE_PANEL_HEIGHT_PX = 420
MAX_CURVE_COLUMNS = 2
#: Panel title and y-axis label (with unit) of each logged metric group; a group not listed is titled
#: by its name. The groups are the first parts of the keys globallocal.training.loop logs.
CURVE_PANELS = {
    "loss_seg": ("Segmentation loss (labelled images)", "cross-entropy (nats per pixel)"),
    "loss_adv": ("Alignment loss of the segmenter (before its weight)", "loss (nats; LSGAN: squared error)"),
    "loss_d": ("Discriminator loss", "loss (nats; LSGAN: squared error)"),
    "d_out": ("Discriminator output", "mean P(target)"),
    "d_acc": ("Discriminator accuracy", "share of correct decisions (0-1)"),
    "local_kept": ("Local alignment: windows kept", "share of windows (0-1)"),
    "lr": ("Learning rate (poly schedule)", "learning rate"),
    "grad_norm": ("Gradient norm of each loss term on its output", "L2 norm (log scale)"),
}

TSV_SUBDIR = Path("plots") / "metrics"


# --- training curves ---------------------------------------------------------------------------


def read_dvclive_metrics(log_dir: Path) -> dict[str, pd.DataFrame]:
    """Read every scalar a dvclive run logged.

    Returns ``{"loss/seg": DataFrame(step, value), ...}``, keyed by the name given to
    ``Live.log_metric`` and sorted by name; each frame holds int ``step`` and float ``value``.
    """
    metrics_dir = Path(log_dir) / TSV_SUBDIR
    tsv_paths = sorted(metrics_dir.rglob("*.tsv"))
    if not tsv_paths:
        raise UserError(
            f"{metrics_dir}: no dvclive metric files (*.tsv) found; "
            "run the training stage that writes this log first"
        )
    return {_metric_name(path, metrics_dir): _read_metric_tsv(path) for path in tsv_paths}


def _metric_name(tsv_path: Path, metrics_dir: Path) -> str:
    return tsv_path.relative_to(metrics_dir).with_suffix("").as_posix()


def _read_metric_tsv(tsv_path: Path) -> pd.DataFrame:
    # dvclive names the value column after the last part of the metric name ("loss/seg" -> "seg").
    table = pd.read_csv(tsv_path, sep="\t")
    value_column = tsv_path.stem
    if "step" not in table.columns or value_column not in table.columns:
        raise UserError(
            f"{tsv_path}: expected dvclive columns 'step' and '{value_column}', "
            f"found {list(table.columns)}; delete the file and rerun the training stage"
        )
    return pd.DataFrame(
        {"step": table["step"].astype(int), "value": table[value_column].astype(float)}
    )


def curve_label(run_name: str, metric_name: str) -> str:
    """A legend entry in words: the run, then the metric without its panel's name ("adapted: global main target")."""
    detail = metric_name.split("/", 1)[-1].replace("_", " ")
    return f"{run_name}: {detail}"


def metric_group(metric_name: str) -> str:
    """The subplot a metric goes to: its first name part ("loss/seg" -> "loss"; "top" -> "top")."""
    return metric_name.split("/", 1)[0]


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over the last ``window`` values; the first values average what exists.

    ``moving_average([1, 2, 3, 4], 2) == [1, 1.5, 2.5, 3.5]``; ``window=1`` returns the input.
    """
    if window < 1:
        raise UserError(f"curve smoothing window must be an integer >= 1, got {window}")
    series = pd.Series(np.asarray(values, dtype=float))
    return series.rolling(window, min_periods=1).mean().to_numpy()


def plot_training_curves(log_dirs: dict[str, Path], out_path: Path, smoothing: int = 1) -> None:
    """One subplot per metric group (loss, d_out, lr, ...), one line per run and metric.

    ``log_dirs`` maps a run name (legend label) to its dvclive folder; x is the training step,
    y the logged value smoothed by a trailing ``smoothing``-step moving average. Each panel is titled
    in words with its unit on the y axis (CURVE_PANELS).
    """
    save_png(training_curves_figure(log_dirs, smoothing), out_path)


def training_curves_figure(log_dirs: dict[str, Path], smoothing: int = 1) -> Figure:
    """The figure plot_training_curves writes."""
    if not log_dirs:
        raise UserError("no training logs given for the curves figure; list at least one run")
    lines_by_group: dict[str, list[tuple[str, pd.DataFrame]]] = {}
    for run_name, log_dir in log_dirs.items():
        for metric_name, frame in read_dvclive_metrics(log_dir).items():
            label = curve_label(run_name, metric_name)
            lines_by_group.setdefault(metric_group(metric_name), []).append((label, frame))

    # Losses first, in CURVE_PANELS' order; groups it does not describe after them, by name.
    order = list(CURVE_PANELS)
    groups = sorted(lines_by_group, key=lambda g: (order.index(g) if g in order else len(order), g))
    num_columns = min(MAX_CURVE_COLUMNS, len(groups))
    num_rows = math.ceil(len(groups) / num_columns)
    figure = new_figure(num_columns * CURVE_PANEL_WIDTH_PX, num_rows * CURVE_PANEL_HEIGHT_PX)
    axes = figure.subplots(num_rows, num_columns, squeeze=False).ravel()
    for axis, group in zip(axes, groups):
        for label, frame in lines_by_group[group]:
            # A series of one logged point is a marker, not an invisible line.
            marker = "o" if len(frame) < 2 else None
            axis.plot(frame["step"], moving_average(frame["value"], smoothing), label=label, marker=marker)
        title, unit = CURVE_PANELS.get(group, (group, "value"))
        axis.set_title(title)
        axis.set_ylabel(unit)
        if group in LOG_SCALE_GROUPS:
            axis.set_yscale("log")
        axis.set_xlabel("iteration")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=LEGEND_FONT_SIZE_PT)
    for unused_axis in axes[len(groups):]:
        unused_axis.set_visible(False)
    if smoothing > 1:
        figure.suptitle(f"moving average over {smoothing} steps")
    return figure
