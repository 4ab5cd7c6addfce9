"""The report: figures exist at their sizes, values read back exactly, the Markdown is right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dvclive import Live
from PIL import Image

from globallocal.data.labels import CLASS_NAMES, NUM_CLASSES, TRAIN_COLORS
from globallocal.errors import UserError
from globallocal.reporting import (
    CONFUSION_FIGURE_PX,
    CURVE_PANEL_HEIGHT_PX,
    CURVE_PANEL_WIDTH_PX,
    PER_CLASS_FIGURE_PX,
    QUALITATIVE_KEY_HEIGHT_PX,
    QUALITATIVE_PANEL_WIDTH_PX,
    QUALITATIVE_ROW_MARGIN_PX,
    entropy_to_rgb,
    iou_table,
    metric_group,
    moving_average,
    plot_confusion,
    plot_per_class_iou,
    plot_qualitative,
    plot_training_curves,
    qualitative_panels,
    read_dvclive_metrics,
    row_normalized_confusion,
    write_report,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG file, after checking it is one PNG that decodes."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG"
        return image.size


def per_class(values: dict[str, float | None]) -> dict[str, float | None]:
    """A full per_class_iou dict: the given classes, every other class 10.0."""
    return {name: values.get(name, 10.0) for name in CLASS_NAMES}


def small_metrics() -> dict:
    return {
        "source_only": {"miou": 31.25, "per_class_iou": per_class({"road": 80.14, "bicycle": None})},
        "adapted": {"miou": 40.0, "per_class_iou": per_class({"road": 85.06, "bicycle": 3.0})},
    }


@pytest.fixture
def outside_git(tmp_path, monkeypatch):
    """Work in tmp_path: dvclive inspects the git repo of the working directory, and the
    project's repo may not have a commit yet."""
    monkeypatch.chdir(tmp_path)


def write_dvclive_log(log_dir: Path, values: dict[str, list[float]]) -> None:
    """A real dvclive log, written the way the training stages write theirs."""
    num_steps = len(next(iter(values.values())))
    with Live(str(log_dir), dvcyaml=False, save_dvc_exp=False) as live:
        for step in range(num_steps):
            for name, series in values.items():
                live.log_metric(name, series[step])
            live.next_step()


# --- training curves ---------------------------------------------------------------------------


@pytest.mark.usefixtures("outside_git")
def test_read_dvclive_metrics_returns_the_logged_values_by_name(tmp_path):
    write_dvclive_log(
        tmp_path / "run",
        {"loss/seg": [2.5, 1.25, 0.625], "lr/generator": [2.5e-4, 2.0e-4, 1.5e-4]},
    )

    metrics = read_dvclive_metrics(tmp_path / "run")

    assert sorted(metrics) == ["loss/seg", "lr/generator"]
    assert metrics["loss/seg"]["step"].tolist() == [0, 1, 2]
    assert metrics["loss/seg"]["value"].tolist() == [2.5, 1.25, 0.625]
    assert metrics["lr/generator"]["value"].tolist() == [2.5e-4, 2.0e-4, 1.5e-4]


def test_read_dvclive_metrics_of_a_folder_without_log_names_it(tmp_path):
    with pytest.raises(UserError, match="no dvclive metric files"):
        read_dvclive_metrics(tmp_path / "missing_run")


def test_metric_group_is_the_first_name_part():
    assert metric_group("d_out/global_target") == "d_out"
    assert metric_group("loss/seg") == "loss"
    assert metric_group("miou") == "miou"


def test_moving_average_is_trailing_and_averages_the_available_prefix():
    assert moving_average(np.array([1.0, 2.0, 3.0, 4.0]), 2).tolist() == [1.0, 1.5, 2.5, 3.5]
    assert moving_average(np.array([3.0, 6.0, 9.0]), 3).tolist() == [3.0, 4.5, 6.0]


def test_moving_average_with_window_one_returns_the_values():
    assert moving_average(np.array([5.0, -1.0, 2.0]), 1).tolist() == [5.0, -1.0, 2.0]


def test_moving_average_rejects_a_window_below_one():
    with pytest.raises(UserError, match="smoothing window"):
        moving_average(np.array([1.0]), 0)


@pytest.mark.usefixtures("outside_git")
def test_training_curves_have_one_panel_per_metric_group(tmp_path):
    # Three groups (loss, lr, d_out) across two runs -> 2 columns x 2 rows of panels.
    write_dvclive_log(tmp_path / "pretrain", {"loss/seg": [1.0, 0.5], "lr/generator": [2e-4, 1e-4]})
    write_dvclive_log(tmp_path / "adapt", {"loss/seg": [0.5, 0.4], "d_out/global_target": [0.7, 0.6]})
    out_path = tmp_path / "figures" / "curves.png"

    plot_training_curves(
        {"pretrain": tmp_path / "pretrain", "adapt": tmp_path / "adapt"}, out_path, smoothing=2
    )

    assert png_size(out_path) == (2 * CURVE_PANEL_WIDTH_PX, 2 * CURVE_PANEL_HEIGHT_PX)


# --- per-class IoU -----------------------------------------------------------------------------


def test_per_class_iou_figure_is_a_png_of_the_fixed_size(tmp_path):
    out_path = tmp_path / "per_class_iou.png"

    plot_per_class_iou(small_metrics(), out_path, models=("source_only", "adapted"))

    assert png_size(out_path) == PER_CLASS_FIGURE_PX


def test_per_class_iou_of_a_model_missing_from_metrics_names_it(tmp_path):
    with pytest.raises(UserError, match="no model 'oracle'"):
        plot_per_class_iou(small_metrics(), tmp_path / "bars.png")


# --- confusion ---------------------------------------------------------------------------------


def test_row_normalized_confusion_divides_each_row_by_its_ground_truth_count():
    confusion = np.array([[3, 1], [2, 6]], dtype=np.int64)

    assert row_normalized_confusion(confusion).tolist() == [[0.75, 0.25], [0.25, 0.75]]


def test_row_normalized_confusion_leaves_classes_without_ground_truth_undefined():
    recall = row_normalized_confusion(np.array([[0, 0], [1, 3]], dtype=np.int64))

    assert np.isnan(recall[0]).all()
    assert recall[1].tolist() == [0.25, 0.75]


def test_confusion_figure_is_a_png_of_the_fixed_size(tmp_path):
    confusion = np.arange(NUM_CLASSES * NUM_CLASSES, dtype=np.int64).reshape(NUM_CLASSES, -1)
    out_path = tmp_path / "confusion.png"

    plot_confusion(confusion, CLASS_NAMES, out_path, title="adapted")

    assert png_size(out_path) == CONFUSION_FIGURE_PX


def test_confusion_figure_rejects_a_matrix_that_does_not_match_the_class_names(tmp_path):
    with pytest.raises(ValueError, match=r"expected \(19, 19\)"):
        plot_confusion(np.zeros((2, 2), np.int64), CLASS_NAMES, tmp_path / "c.png", "x")


# --- qualitative -------------------------------------------------------------------------------


def qualitative_sample(name: str, height_px: int = 4, width_px: int = 6) -> dict:
    label = np.zeros((height_px, width_px), np.uint8)
    label[0, 0] = 255
    return {
        "name": name,
        "image": np.full((height_px, width_px, 3), 7, np.uint8),
        "label": label,
        "preds": {m: np.ones((height_px, width_px), np.uint8) for m in ("source_only", "adapted")},
        "entropy": {m: np.zeros((height_px, width_px)) for m in ("source_only", "adapted")},
    }


def test_qualitative_grid_has_a_row_per_sample_of_image_label_then_two_panels_per_model():
    samples = [qualitative_sample("a"), qualitative_sample("b"), qualitative_sample("c")]

    rows = qualitative_panels(samples, models=("source_only", "adapted"))

    assert [len(row) for row in rows] == [6, 6, 6]
    assert [title for title, _ in rows[0]] == [
        "a", "ground truth", "source_only", "source_only entropy", "adapted", "adapted entropy",
    ]


def test_qualitative_ground_truth_is_colorized_with_ignore_black():
    (row,) = qualitative_panels([qualitative_sample("a")], models=("adapted",))
    ground_truth = row[1][1]

    assert ground_truth[0, 0].tolist() == [0, 0, 0]
    assert ground_truth[1, 1].tolist() == TRAIN_COLORS[0].tolist()
    assert row[2][1][1, 1].tolist() == TRAIN_COLORS[1].tolist()


def test_entropy_to_rgb_maps_zero_and_one_to_the_ends_of_viridis():
    rgb = entropy_to_rgb(np.array([[0.0, 1.0, 1.5]]))

    # viridis starts dark purple (68, 1, 84) and ends yellow (253, 231, 36); >1 is clipped.
    assert rgb.dtype == np.uint8
    assert rgb[0].tolist() == [[68, 1, 84], [253, 231, 36], [253, 231, 36]]


def test_qualitative_figure_is_panel_width_times_columns_by_rows(tmp_path):
    samples = [qualitative_sample("a", 40, 80), qualitative_sample("b", 40, 80)]
    out_path = tmp_path / "qualitative.png"

    plot_qualitative(samples, out_path, models=("source_only", "adapted"))

    panel_height_px = QUALITATIVE_PANEL_WIDTH_PX // 2
    assert png_size(out_path) == (
        6 * QUALITATIVE_PANEL_WIDTH_PX,
        2 * (panel_height_px + QUALITATIVE_ROW_MARGIN_PX) + QUALITATIVE_KEY_HEIGHT_PX,
    )


def test_qualitative_sample_without_a_model_prediction_names_both():
    sample = qualitative_sample("frankfurt_0")
    del sample["preds"]["adapted"]

    with pytest.raises(ValueError, match="'frankfurt_0' has no preds for model 'adapted'"):
        qualitative_panels([sample], models=("adapted",))


# --- Markdown ----------------------------------------------------------------------------------


def test_iou_table_rows_are_classes_then_miou_with_one_decimal_and_dash_for_undefined():
    lines = iou_table(small_metrics()).splitlines()

    assert lines[0] == "| class | source_only | adapted |"
    assert lines[1] == "|---|---:|---:|"
    assert lines[2] == "| road | 80.1 | 85.1 |"
    assert lines[3] == "| sidewalk | 10.0 | 10.0 |"
    assert lines[2 + NUM_CLASSES - 1] == "| bicycle | — | 3.0 |"
    assert lines[2 + NUM_CLASSES] == "| mIoU | 31.2 | 40.0 |"
    assert len(lines) == 2 + NUM_CLASSES + 1


def test_iou_table_adds_subset_miou_rows_when_a_model_has_them():
    metrics = small_metrics()
    metrics["adapted"]["miou_16"] = 44.44

    lines = iou_table(metrics).splitlines()

    assert lines[-1] == "| mIoU-16 | — | 44.4 |"


def test_iou_table_of_a_model_without_miou_names_the_key():
    metrics = {"adapted": {"per_class_iou": {}}}

    with pytest.raises(UserError, match="'adapted' lack the key 'miou'"):
        iou_table(metrics)


def test_report_links_figures_relative_to_the_report_folder(tmp_path):
    report_path = tmp_path / "reports" / "report.md"
    figures = {
        "Per-class IoU": tmp_path / "reports" / "figures" / "per_class_iou.png",
        "Curves": tmp_path / "plots" / "curves.png",
    }

    text = write_report(report_path, small_metrics(), figures, notes={})

    assert "![Per-class IoU](figures/per_class_iou.png)" in text
    assert "![Curves](../plots/curves.png)" in text


def test_report_is_written_to_disk_and_returned(tmp_path):
    report_path = tmp_path / "out" / "report.md"

    text = write_report(report_path, small_metrics(), figures={}, notes={})

    assert report_path.read_text(encoding="utf-8") == text
    assert "| mIoU | 31.2 | 40.0 |" in text


def test_report_orders_notes_setup_table_fairness_other_reproduce(tmp_path):
    notes = {
        "reproduce": "`dvc repro`",
        "caveats": "Synthetic data.",
        "fairness": "Same source iterations.",
        "setup": "Embedded benchmark.",
    }

    text = write_report(tmp_path / "report.md", small_metrics(), figures={}, notes=notes)

    positions = [
        text.index("## Setup\n\nEmbedded benchmark."),
        text.index("| mIoU |"),
        text.index("## Fair comparison\n\nSame source iterations."),
        text.index("## caveats\n\nSynthetic data."),
        text.index("## How to reproduce\n\n`dvc repro`"),
    ]
    assert positions == sorted(positions)


# --- sweeps and the ablation table -------------------------------------------------------------

from globallocal.reporting import ablation_table, mean_std, plot_ablation, sweep_table  # noqa: E402


def _ablation_rows():
    rows = []
    for seed, (off, on) in enumerate(((20.0, 21.5), (19.0, 19.5), (21.0, 23.0))):
        rows.append({"family": "advent", "local": 0, "seed": seed, "val_miou": off, "dev_miou": off + 1})
        rows.append({"family": "advent", "local": 1, "seed": seed, "val_miou": on, "dev_miou": on + 1})
        rows.append({"family": "source_only", "local": 0, "seed": seed, "val_miou": 12.0 + seed, "dev_miou": 13.0})
    return rows


def test_mean_std_uses_the_sample_standard_deviation():
    assert mean_std([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0))
    assert mean_std([5.0]) == (5.0, 0.0)


def test_ablation_table_gives_means_and_the_per_seed_paired_difference():
    table = ablation_table(_ablation_rows())
    advent = next(line for line in table.splitlines() if line.startswith("| advent"))
    # off 20/19/21 -> 20.00 ± 1.00; on 21.5/19.5/23 -> 21.33 ± 1.76; diffs +1.5/+0.5/+2.0 -> 1.33 ± 0.76
    assert "20.00 ± 1.00" in advent and "21.33 ± 1.76" in advent
    assert "+1.50, +0.50, +2.00" in advent and "1.33 ± 0.76" in advent
    source_only = next(line for line in table.splitlines() if line.startswith("| source_only"))
    assert "13.00 ± 1.00" in source_only


def test_sweep_table_marks_the_best_mean_dev_variant_not_the_best_val():
    rows = [
        {"variant": "a", "seed": 0, "dev_miou": 30.0, "val_miou": 10.0, "params": "x=1"},
        {"variant": "b", "seed": 0, "dev_miou": 20.0, "val_miou": 40.0, "params": "x=2"},
    ]
    lines = sweep_table(rows).splitlines()
    assert "(best dev)" in next(line for line in lines if line.startswith("| a"))
    assert "(best dev)" not in next(line for line in lines if line.startswith("| b"))


def test_ablation_figure_is_written_at_its_fixed_size(tmp_path):
    out = tmp_path / "ablation.png"
    plot_ablation(_ablation_rows(), out)
    from PIL import Image

    assert Image.open(out).size == (900, 500)
