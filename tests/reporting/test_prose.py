"""The report's prose speaks of what ran: the BatchNorm protocol, SYNTHIA's headline, this cell's rows."""

import copy

import matplotlib.image as mpimg
import pytest

from globallocal import config
from globallocal.reporting import prose
from globallocal.reporting.ablation import read_ablation, rows_of_cell
from globallocal.reporting.sweeps import plot_ablation
from globallocal.reporting.tables import markdown_table, pm, signed
from support.tiny_project import tiny_params

SCORES = {"source_only": {"miou": 10.0, "miou_16": 12.0}, "adabn": {"miou": 12.0, "miou_16": 14.0},
          "adapted": {"miou": 13.0, "miou_16": 16.0}, "oracle": {"miou": 20.0, "miou_16": 22.0}}


def params_with(**sections):
    raw = copy.deepcopy(tiny_params())
    for section, values in sections.items():
        raw[section].update(values)
    return config.parse(raw)


def test_markdown_table_aligns_columns_and_pm_writes_mean_and_sample_std():
    table = markdown_table(["model", "val"], "lr", [["a", pm([1.0, 3.0])], ["b", pm([])]])
    assert table == "| model | val |\n|---|---:|\n| a | 2.00 ± 1.41 |\n| b | — |"
    assert signed([0.5, -0.25]) == "+0.50, -0.25"
    with pytest.raises(ValueError, match="align"):
        markdown_table(["a", "b"], "l", [])


@pytest.mark.parametrize("protocol, words", [
    ("learned", "learned BatchNorm its running statistics follow the target"),
    ("reference", "reference code's BatchNorm (affine frozen, running statistics still updated"),
    ("frozen", "frozen BatchNorm the statistics stay the source's"),
])
def test_the_fairness_note_names_the_batchnorm_protocol_that_ran(protocol, words):
    note = prose.fairness_note(params_with(model={"bn_protocol": protocol}), SCORES)
    assert words in note
    assert "what target statistics alone give, the baseline that alignment has to beat" in note
    assert "adapted 13.00, oracle 20.00 mIoU" in note


def test_on_synthia_the_gap_and_dev_sentences_lead_with_miou_16():
    params = params_with(data={"source": "synthia"}, prepare={"generate": False})
    assert prose.gap_sentence(params, SCORES).startswith("Source-only 12.00, adapted 16.00, oracle 22.00 mIoU-16")
    assert "mIoU-16 on dev: source_only 12.00, adabn 14.00, adapted 16.00, oracle 22.00" in prose.dev_note(
        params, SCORES)


def test_the_ablation_note_tells_rows_of_other_cells_from_an_empty_file(tmp_path):
    path = tmp_path / "ablation.csv"
    path.write_text("family,local,seed,val_miou,dev_miou,bn,shift,setting\n"
                    "advent,1,0,13.0,14.0,learned,scale-1,committed\n")
    rows = read_ablation(path)
    assert "holds no runs yet" in prose.ablation_note([], [], "none", "learned")
    other = prose.ablation_note(rows_of_cell(rows, "none", "learned"), rows, "none", "learned")
    assert "holds no rows for this cell (shift `none`, BatchNorm `learned`" in other and "its 1 rows" in other
    assert "seeds [0]" in prose.ablation_note(rows_of_cell(rows, "scale-1", "learned"), rows, "scale-1", "learned")


def test_the_goals_note_reads_every_cell_of_this_regime_and_says_when_none_ran(tmp_path):
    path = tmp_path / "ablation.csv"
    path.write_text("family,local,seed,val_miou,dev_miou,bn,shift,setting,stats,backbone\n"
                    "adabn,0,0,13.0,14.0,learned,swap-3,committed,reestimate,mobilenetv3_small/random\n"
                    "advent,1,0,13.5,14.0,learned,swap-3,committed,reestimate,mobilenetv3_small/random\n"
                    "advent,1,0,10.0,14.0,learned,swap-3,committed,mixed,mobilenetv3_small/random\n")
    rows = read_ablation(path)
    note = prose.goals_note(rows, "learned", "reestimate", "mobilenetv3_small/random")
    assert "| adapted (AdvEnt + local) >= AdaBN, val | swap-3 | s0 +0.50 | — | met (1/1 seeds) |" in note
    assert "| adapted (AdvEnt + local) >= AdaBN, val | none | — | — | not run |" in note
    assert "holds no study rows" in prose.goals_note(rows, "learned", "domain_specific", "mobilenetv3_small/random")


def test_the_ablation_figure_exists_without_a_row_of_this_cell(tmp_path):
    out = tmp_path / "ablation.png"
    plot_ablation([], out)
    assert mpimg.imread(out).shape[2] in (3, 4)


def test_a_training_curve_of_one_logged_point_is_a_marker_with_a_legend_in_words(tmp_path):
    from globallocal.reporting.curves import curve_label, training_curves_figure

    series = tmp_path / "adapted" / "plots" / "metrics" / "loss_seg"
    series.mkdir(parents=True)
    (series / "main.tsv").write_text("timestamp\tstep\tmain\n0\t1\t0.5\n")
    figure = training_curves_figure({"adapted": tmp_path / "adapted"})
    (line,) = figure.axes[0].lines
    assert line.get_marker() == "o" and line.get_label() == "adapted: main"
    assert curve_label("adapted", "d_out/global_main_target") == "adapted: global main target"


def test_confusion_figures_are_in_percent(tmp_path, monkeypatch):
    import numpy as np

    from globallocal.reporting import figures

    drawn = {}
    monkeypatch.setattr(figures, "save_png", lambda figure, path: drawn.setdefault("figure", figure))
    figures.plot_confusion(np.array([[3, 1], [0, 4]]), ["road", "sky"], tmp_path / "c.png", title="t")
    image = drawn["figure"].axes[0].images[0]
    assert image.get_clim() == (0.0, 100.0)
    assert image.get_array()[0, 0] == pytest.approx(75.0)
