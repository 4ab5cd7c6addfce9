"""The report's self-training section: pseudo-labels beside ground truth, their precision, the control.

Inputs are what the selftrain stage writes under reports/selftrain/ (``pseudo_labels.json``: per class the
precision of the kept pseudo-labels against target-train ground truth, their share and threshold;
``dev_samples.npz``: ``label_i`` / ``pseudo_i`` (H, W) uint8 trainIds of a few dev images) and the
metrics evaluate writes. Ground truth is read here for the report only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from globallocal import atomic
from globallocal.data.labels import IGNORE_INDEX, colorize
from globallocal.reporting.figures import FIGURE_DPI
from globallocal.reporting.inputs import MISSING_VALUE
from globallocal.reporting.tables import markdown_table, pm, signed

PANEL_WIDTH_PX = 320
ROW_MARGIN_PX = 40


def load_dev_samples(path: Path) -> list[dict]:
    """[{"name", "label", "pseudo"}] from dev_samples.npz."""
    with np.load(path) as arrays:
        return [{"name": Path(str(name)).name, "label": arrays[f"label_{i}"], "pseudo": arrays[f"pseudo_{i}"]}
                for i, name in enumerate(arrays["names"])]


def plot_pseudo_labels(samples: list[dict], out_path: Path) -> None:
    """One row per dev image: ground truth, pseudo-labels (unlabelled pixels black), and where they are wrong
    (red: a kept pixel whose class differs from the truth; grey: kept and right)."""
    height_px, width_px = samples[0]["label"].shape
    panel_height_px = round(PANEL_WIDTH_PX * height_px / width_px)
    height_in = len(samples) * (panel_height_px + ROW_MARGIN_PX) / FIGURE_DPI
    figure = Figure(figsize=(3 * PANEL_WIDTH_PX / FIGURE_DPI, height_in), dpi=FIGURE_DPI, layout="constrained")
    axes = figure.subplots(len(samples), 3, squeeze=False)
    for row, sample in zip(axes, samples):
        label, pseudo = sample["label"], sample["pseudo"]
        kept = (pseudo != IGNORE_INDEX) & (label != IGNORE_INDEX)
        errors = np.zeros(label.shape + (3,), np.uint8)
        errors[kept & (pseudo == label)] = (160, 160, 160)
        errors[kept & (pseudo != label)] = (220, 30, 30)
        kept_share = 100.0 * (pseudo != IGNORE_INDEX).mean()
        panels = ((f"{sample['name']}: ground truth", colorize(label)),
                  (f"pseudo-labels ({kept_share:.0f}% kept)", colorize(pseudo)),
                  ("kept: right (grey) / wrong (red)", errors))
        for axis, (title, rgb) in zip(row, panels):
            axis.imshow(rgb, interpolation="nearest")
            axis.set_title(title, fontsize=8)
            axis.set_xticks([])
            axis.set_yticks([])
    with atomic.atomic_path(Path(out_path)) as tmp:
        figure.savefig(tmp, dpi=FIGURE_DPI, format="png")


def precision_table(diagnostics: Mapping) -> str:
    """Markdown: per class, the pseudo-labels' precision (%), share of the kept pixels (%) and threshold."""
    body = []
    for name, row in diagnostics["per_class"].items():
        precision = MISSING_VALUE if row["precision"] is None else f"{row['precision']:.1f}"
        threshold = MISSING_VALUE if row["threshold"] == float("inf") else f"{row['threshold']:.3f}"
        body.append([name, precision, f"{row['share_of_kept']:.1f}", threshold])
    return markdown_table(["class", "precision", "share of kept", "threshold"], "lrrr", body)


def selftrain_note(metrics: Mapping, diagnostics: Mapping, iterations: int) -> str:
    """Self-trained vs its control on val and dev, and the pseudo-labels' precision."""
    start = Path(diagnostics["start"]).stem
    scored = [row for row in diagnostics["per_class"].values() if row["precision"] is not None]
    overall = sum(row["precision"] * row["share_of_kept"] for row in scored) / 100.0

    def line(split: str, scores: Mapping) -> list[str]:
        st, control = scores["selftrained"]["miou"], scores["selftrain_control"]["miou"]
        return [split, f"{scores[start]['miou']:.2f}", f"{control:.2f}", f"{st:.2f}", f"{st - control:+.2f}"]

    comparison = markdown_table(["split", f"start ({start})", "control", "selftrained", "selftrained - control"],
                                "lrrrr", [line("val", metrics), line("dev", metrics["dev"])])

    return (
        f"`selftrained` starts from `{start}` and trains {iterations} more iterations on "
        "source labels + pseudo-labelled target train; `selftrain_control` runs the same iterations from the "
        "same start without the pseudo-label loss (the target batches still forwarded, so BatchNorm statistics "
        "follow the same protocol). The difference is the pseudo-labels' effect (one seed).\n\n"
        + comparison + "\n\n"
        f"Pseudo-labels of the start model on target train ({diagnostics['threshold_rule']} thresholds, top "
        f"{100 * diagnostics['top_p']:.0f}%): {diagnostics['kept_share']:.1f}% of the pixels kept, "
        f"{overall:.1f}% of them right. Precision against the target-train ground truth (computed for this report "
        "only, never used in training):\n\n"
        + precision_table(diagnostics)
    )


def selftrain_table(rows: list[dict]) -> str:
    """Markdown from reports/ablation.csv's ``selftrain = 1`` rows: per (family, local) the self-trained and
    control val mIoU (mean ± std over seeds), the per-seed paired difference on val and dev."""
    rows = [row for row in rows if int(row["selftrain"]) == 1]
    seeds = sorted({row["seed"] for row in rows})
    header = ["start model", "local", "val: control", "val: selftrained",
              "val paired diff per seed (" + ", ".join(f"s{s}" for s in seeds) + ")", "val diff mean ± std",
              "dev diff mean ± std"]
    body = []
    for family, local in dict.fromkeys((row["family"], int(row["local"])) for row in rows):
        group = sorted((r for r in rows if r["family"] == family and int(r["local"]) == local), key=lambda r: r["seed"])
        val_diff = [float(r["val_miou"]) - float(r["control_val_miou"]) for r in group]
        dev_diff = [float(r["dev_miou"]) - float(r["control_dev_miou"]) for r in group]
        body.append([family, local, pm([float(r["control_val_miou"]) for r in group]),
                     pm([float(r["val_miou"]) for r in group]), signed(val_diff), pm(val_diff), pm(dev_diff)])
    return markdown_table(header, "lrrrlrr", body)
