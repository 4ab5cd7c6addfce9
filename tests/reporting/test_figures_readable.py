"""Figures a person reads without the code open: a class-colour legend and an entropy colour bar on the
qualitative grid, training-curve panels titled in words with units, one colour per stage in the vega
loss plot."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_reporting import qualitative_sample, write_dvclive_log

from globallocal.data.labels import CLASS_NAMES, TRAIN_COLORS
from globallocal.reporting import ENTROPY_BAR_LABEL, qualitative_figure, training_curves_figure

REPO = Path(__file__).resolve().parents[2]
STAGES = ["pretrain", "source_only", "adapted", "oracle"]


def test_qualitative_grid_has_a_legend_of_the_19_class_colours_and_ignored_black():
    figure = qualitative_figure([qualitative_sample("a", 8, 16)], models=("source_only", "adapted"))

    (legend,) = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == [*CLASS_NAMES, "ignored (ground truth)"]
    colours = np.array([patch.get_facecolor()[:3] for patch in legend.get_patches()])
    np.testing.assert_allclose(colours[:19], TRAIN_COLORS / 255)
    np.testing.assert_allclose(colours[19], (0, 0, 0))


def test_qualitative_grid_has_an_entropy_colour_bar_from_certain_to_uniform():
    figure = qualitative_figure([qualitative_sample("a", 8, 16)], models=("source_only", "adapted"))

    bars = [axis for axis in figure.axes if axis.get_xlabel() == ENTROPY_BAR_LABEL]
    assert len(bars) == 1
    assert bars[0].get_xlim() == (0.0, 1.0)
    assert ENTROPY_BAR_LABEL == "entropy / log(19): 0 = certain, 1 = uniform over the classes"


def test_training_curve_panels_are_titled_in_words_with_units(tmp_path):
    write_dvclive_log(tmp_path / "adapt", {"loss_seg/main": [1.0, 0.5], "d_acc/global_main_source": [0.5, 0.6],
                                           "grad_norm/seg_main": [1.0, 2.0], "new_group/x": [1.0, 1.0]})

    figure = training_curves_figure({"adapt": tmp_path / "adapt"})

    panels = [(axis.get_title(), axis.get_ylabel()) for axis in figure.axes if axis.get_visible()]
    assert panels == [  # in reading order: the loss first, undescribed groups last
        ("Segmentation loss (labelled images)", "cross-entropy (nats per pixel)"),
        ("Discriminator accuracy", "share of correct decisions (0-1)"),
        ("Gradient norm of each loss term on its output", "L2 norm (log scale)"),
        ("new_group", "value"),  # a group without a description keeps its key
    ]


def vega_stage(filename: str) -> str:
    """The template's Vega expression peek(split(split(filename, '/plots/')[0], '/')), in Python."""
    return filename.split("/plots/")[0].split("/")[-1]


@pytest.mark.e2e  # runs `dvc plots show` in a subprocess
def test_the_vega_loss_plot_colours_each_stage_and_titles_its_axes(tmp_path):
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / ".dvc/plots", tmp_path / ".dvc/plots")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    for stage in STAGES:
        tsv = tmp_path / f"reports/train/{stage}/plots/metrics/loss_seg/main.tsv"
        tsv.parent.mkdir(parents=True)
        tsv.write_text("step\tmain\n0\t2.0\n1\t1.5\n")

    shown = subprocess.run([sys.executable, "-m", "dvc", "plots", "show", "--show-vega", "Generator losses"],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    spec = json.loads(shown)

    assert spec["encoding"]["color"]["field"] == "stage"
    assert spec["transform"] == [{"calculate": "peek(split(split(datum.filename, '/plots/')[0], '/'))",
                                  "as": "stage"}]
    assert sorted({vega_stage(row["filename"]) for row in spec["data"]["values"]}) == sorted(STAGES)
    assert spec["encoding"]["y"]["title"] == "segmentation loss (cross-entropy, nats per pixel)"
    assert spec["encoding"]["x"]["title"] == "iteration"
