"""The report's figures: per-class IoU bars, confusion maps, qualitative grids, class frequencies.

Figures are drawn on ``matplotlib.figure.Figure`` objects rendered by the Agg canvas directly,
never through ``pyplot``: no global backend switch, no open-figure bookkeeping, and the code
works on a headless machine. Every figure has a fixed size in pixels (no ``bbox_inches="tight"``),
so its PNG is exactly ``width_px x height_px``.

Inputs (see ``pipeline/report.py``):

* metrics: ``{model: {"miou": float, "per_class_iou": {class_name: float | None}, ...}}``,
  IoU in percent, ``None`` when undefined (class absent from ground truth and predictions).
* qualitative samples: dicts with ``name``, ``image`` (H, W, 3) uint8 RGB, ``label`` (H, W) uint8
  trainIds, ``preds[model]`` (H, W) uint8 trainIds, ``entropy[model]`` (H, W) float in [0, 1].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from globallocal import atomic
from globallocal.data.labels import CLASS_NAMES, TRAIN_COLORS, colorize
from globallocal.reporting.inputs import FREQUENCY_DOMAINS, PERCENT, as_float, check_models, format_iou

FIGURE_DPI = 100
LEGEND_FONT_SIZE_PT = 9

PER_CLASS_FIGURE_PX = (1400, 560)
#: Fraction of one class slot the group of bars fills; the rest separates neighbouring classes.
BAR_GROUP_WIDTH = 0.8
CLASS_LABEL_ROTATION_DEG = 45

CONFUSION_FIGURE_PX = (1000, 900)
#: Cells below this recall stay unlabelled so the few large entries stand out.
MIN_ANNOTATED_RECALL = 0.01
CONFUSION_ANNOTATION_FONT_SIZE_PT = 7
CONFUSION_CMAP = "Blues"
#: Rows without ground-truth pixels (recall undefined) are drawn in this colour.
UNDEFINED_CELL_COLOR = "lightgrey"

QUALITATIVE_PANEL_WIDTH_PX = 320
#: Room under each row of panels for titles and the sample name.
QUALITATIVE_ROW_MARGIN_PX = 40
ENTROPY_CMAP = "viridis"
#: Room under the grid for the class-colour legend and the entropy colour bar.
QUALITATIVE_KEY_HEIGHT_PX = 150
QUALITATIVE_LEGEND_COLUMNS = 10
ENTROPY_BAR_LABEL = f"entropy / log({len(CLASS_NAMES)}): 0 = certain, 1 = uniform over the classes"
#: Ground-truth pixels outside the 19 classes (colorize paints them black).
IGNORED_COLOR = (0, 0, 0)



# --- per-class IoU -----------------------------------------------------------------------------


def plot_per_class_iou(
    metrics: dict,
    out_path: Path,
    models: Sequence[str] = ("source_only", "adapted", "oracle"),
    title: str = "Per-class IoU on target val",
) -> None:
    """Grouped bars: per class (x axis) one bar per model, mIoU in the legend, ``title`` above.

    Undefined IoUs (``None``) get no bar but an "n/a" mark.
    """
    check_models(metrics, models)
    figure = new_figure(*PER_CLASS_FIGURE_PX)
    axis = figure.subplots()
    class_positions = np.arange(len(CLASS_NAMES))
    ious = [np.array([as_float(metrics[model]["per_class_iou"].get(name)) for name in CLASS_NAMES]) for model in models]
    labels = [f"{model} (mIoU {format_iou(metrics[model]['miou'])})" for model in models]
    for offset, model_ious in zip(grouped_bars(axis, class_positions, labels, ious), ious):
        # Without a mark an undefined IoU would look like a score of 0.
        for position in class_positions[np.isnan(model_ious)] + offset:
            axis.text(position, 1, "n/a", rotation=90, ha="center", va="bottom", fontsize="small")
    axis.set_xticks(class_positions, CLASS_NAMES, rotation=CLASS_LABEL_ROTATION_DEG, ha="right")
    axis.set_xlim(-0.5, len(CLASS_NAMES) - 0.5)
    axis.set_ylim(0, 100)
    axis.set_ylabel("IoU (%)")
    axis.set_title(title)
    axis.grid(axis="y", alpha=0.3)
    axis.legend()
    save_png(figure, out_path)


def grouped_bars(axis, positions: np.ndarray, labels: Sequence[str], heights: Sequence[np.ndarray]) -> list[float]:
    """One bar per series at each position, side by side within BAR_GROUP_WIDTH; returns each series' offset."""
    width = BAR_GROUP_WIDTH / len(labels)
    offsets = [(index - (len(labels) - 1) / 2) * width for index in range(len(labels))]
    for offset, label, values in zip(offsets, labels, heights):
        axis.bar(positions + offset, values, width=width, label=label)
    return offsets


# --- confusion ---------------------------------------------------------------------------------


def row_normalized_confusion(confusion: np.ndarray) -> np.ndarray:
    """(K, K) counts (rows = ground truth, cols = prediction) -> (K, K) float per-row fractions.

    Entry [i, j] is the share of class-i pixels predicted as j, so the diagonal is the recall.
    Rows without any ground-truth pixel are NaN: their recall is undefined, not zero.
    """
    counts = np.asarray(confusion, dtype=np.float64)
    row_totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(row_totals > 0, counts / row_totals, np.nan)


def plot_confusion(
    confusion: np.ndarray, class_names: Sequence[str], out_path: Path, title: str
) -> None:
    """Heat map of the row-normalised (recall) confusion matrix in percent, class names on both axes;
    ``title`` names the model and the split.

    ``confusion`` is (K, K) int counts, rows = ground truth, columns = prediction.
    """
    num_classes = len(class_names)
    if np.shape(confusion) != (num_classes, num_classes):
        raise ValueError(
            f"confusion matrix has shape {np.shape(confusion)}, expected "
            f"({num_classes}, {num_classes}) for {num_classes} class names"
        )
    recall = row_normalized_confusion(confusion)
    figure = new_figure(*CONFUSION_FIGURE_PX)
    axis = figure.subplots()
    cmap = colormaps[CONFUSION_CMAP].with_extremes(bad=UNDEFINED_CELL_COLOR)
    image = axis.imshow(PERCENT * recall, cmap=cmap, vmin=0.0, vmax=PERCENT)
    _annotate_cells(axis, recall)
    positions = np.arange(num_classes)
    axis.set_xticks(positions, class_names, rotation=CLASS_LABEL_ROTATION_DEG, ha="right")
    axis.set_yticks(positions, class_names)
    axis.set_xlabel("prediction")
    axis.set_ylabel("ground truth")
    axis.set_title(title)
    figure.colorbar(image, ax=axis, label="% of the ground-truth class's pixels", shrink=0.8)
    save_png(figure, out_path)


def _annotate_cells(axis, recall: np.ndarray) -> None:
    """Write each visible share as a whole percent; white on dark cells so it stays readable."""
    dark_cell_threshold = 0.5
    for row, column in zip(*np.nonzero(recall >= MIN_ANNOTATED_RECALL)):
        share = recall[row, column]
        axis.text(
            column,
            row,
            f"{100 * share:.0f}",
            ha="center",
            va="center",
            fontsize=CONFUSION_ANNOTATION_FONT_SIZE_PT,
            color="white" if share > dark_cell_threshold else "black",
        )


# --- qualitative -------------------------------------------------------------------------------


def qualitative_panels(
    samples: Sequence[dict], models: Sequence[str]
) -> list[list[tuple[str, np.ndarray]]]:
    """The qualitative grid as data: one row per sample of (title, (H, W, 3) uint8 RGB) panels.

    Columns: the image (titled with the sample name), ground truth (ignore black), then per
    model its prediction and its entropy map (viridis, 0 = certain, 1 = uniform).
    """
    if not samples:
        raise ValueError("no qualitative samples given")
    rows = []
    for sample in samples:
        _check_sample(sample, models)
        row = [(sample["name"], sample["image"]), ("ground truth", colorize(sample["label"]))]
        for model in models:
            row.append((model, colorize(sample["preds"][model])))
            row.append((f"{model} entropy", entropy_to_rgb(sample["entropy"][model])))
        rows.append(row)
    return rows


def entropy_to_rgb(entropy: np.ndarray) -> np.ndarray:
    """(H, W) normalised entropy in [0, 1] -> (H, W, 3) uint8 RGB in the viridis colour map."""
    rgba = colormaps[ENTROPY_CMAP](np.clip(entropy, 0.0, 1.0), bytes=True)
    return rgba[..., :3]


def plot_qualitative(
    samples: Sequence[dict], out_path: Path, models: Sequence[str] = ("source_only", "adapted")
) -> None:
    """Grid, one row per sample: image, ground truth, then per model prediction and entropy.

    Each panel is ``QUALITATIVE_PANEL_WIDTH_PX`` wide; the row height follows the first
    sample's aspect ratio. Below the grid (``QUALITATIVE_KEY_HEIGHT_PX``): the colour of each class
    and the entropy colour bar, so the figure reads without the code.
    """
    save_png(qualitative_figure(samples, models), out_path)


def qualitative_figure(samples: Sequence[dict], models: Sequence[str] = ("source_only", "adapted")) -> Figure:
    """The figure plot_qualitative writes."""
    rows = qualitative_panels(samples, models)
    num_columns = len(rows[0])
    height_px, width_px = samples[0]["label"].shape
    panel_height_px = round(QUALITATIVE_PANEL_WIDTH_PX * height_px / width_px)
    figure = new_figure(
        num_columns * QUALITATIVE_PANEL_WIDTH_PX,
        len(rows) * (panel_height_px + QUALITATIVE_ROW_MARGIN_PX) + QUALITATIVE_KEY_HEIGHT_PX,
    )
    axes = figure.subplots(len(rows), num_columns, squeeze=False)
    for row_axes, row_panels in zip(axes, rows):
        for axis, (title, rgb) in zip(row_axes, row_panels):
            axis.imshow(rgb, interpolation="nearest")
            axis.set_title(title)
            axis.set_xticks([])
            axis.set_yticks([])
    figure.colorbar(ScalarMappable(Normalize(0.0, 1.0), colormaps[ENTROPY_CMAP]), ax=axes,
                    location="bottom", label=ENTROPY_BAR_LABEL, shrink=0.4, aspect=40)
    figure.legend(handles=class_legend_handles(), loc="outside lower left", ncol=QUALITATIVE_LEGEND_COLUMNS,
                  fontsize=LEGEND_FONT_SIZE_PT, frameon=False)
    return figure


def class_legend_handles() -> list[Patch]:
    """One colour patch per class, as colorize paints it, then black for ignored ground truth."""
    handles = [Patch(facecolor=np.asarray(color) / 255, label=name) for name, color in zip(CLASS_NAMES, TRAIN_COLORS)]
    return handles + [Patch(facecolor=IGNORED_COLOR, label="ignored (ground truth)")]


def _check_sample(sample: dict, models: Sequence[str]) -> None:
    label_shape = np.shape(sample["label"])
    if np.shape(sample["image"])[:2] != label_shape:
        raise ValueError(
            f"sample {sample['name']!r}: image {np.shape(sample['image'])} is not at the "
            f"label resolution {label_shape}"
        )
    for model in models:
        for kind in ("preds", "entropy"):
            if model not in sample[kind]:
                raise ValueError(f"sample {sample['name']!r} has no {kind} for model {model!r}")
            if np.shape(sample[kind][model]) != label_shape:
                raise ValueError(
                    f"sample {sample['name']!r}: {kind}[{model!r}] has shape "
                    f"{np.shape(sample[kind][model])}, expected the label's {label_shape}"
                )
# --- figure plumbing ---------------------------------------------------------------------------


def new_figure(width_px: int, height_px: int) -> Figure:
    size_in = (width_px / FIGURE_DPI, height_px / FIGURE_DPI)
    return Figure(figsize=size_in, dpi=FIGURE_DPI, layout="constrained")


def save_png(figure: Figure, out_path: Path) -> None:
    with atomic.atomic_path(Path(out_path)) as tmp:
        figure.savefig(tmp, dpi=FIGURE_DPI, format="png")

# --- data statistics (written by prepare) -------------------------------------------------------


def plot_class_frequencies(records: Sequence[Mapping], out_path: Path) -> None:
    """Grouped bars of each class's share of labelled pixels (%) per domain, log scale (rare classes
    are a fraction of a percent). ``records``: one dict per class, {"class", "source", "target_train"}."""
    figure = new_figure(*PER_CLASS_FIGURE_PX)
    axis = figure.subplots()
    positions = np.arange(len(records))
    shares = [np.array([PERCENT * record[domain] for record in records]) for domain in FREQUENCY_DOMAINS]
    grouped_bars(axis, positions, list(FREQUENCY_DOMAINS), shares)
    axis.set_xticks(positions, [record["class"] for record in records],
                    rotation=CLASS_LABEL_ROTATION_DEG, ha="right")
    axis.set_yscale("log")
    axis.set_ylabel("share of labelled pixels (%)")
    axis.set_title("Class pixel shares of the source and target train labels")
    axis.grid(axis="y", alpha=0.3)
    axis.legend()
    save_png(figure, out_path)

