"""The report's self-training section (globallocal.reporting.selftrain): the ablation's self-training rows,
the pseudo-labels' precision table and their figure."""

import numpy as np
from PIL import Image

from globallocal.data.labels import IGNORE_INDEX, TRAIN_COLORS
from globallocal.reporting import load_dev_samples, plot_pseudo_labels, precision_table, selftrain_table


def test_selftrain_table_pairs_each_seed_with_its_control():
    rows = [
        {"family": "advent", "local": 1, "selftrain": 1, "seed": 0, "val_miou": 20.0, "dev_miou": 22.0,
         "control_val_miou": 17.0, "control_dev_miou": 21.0},
        {"family": "advent", "local": 1, "selftrain": 1, "seed": 1, "val_miou": 18.0, "dev_miou": 20.0,
         "control_val_miou": 17.0, "control_dev_miou": 19.0},
        {"family": "advent", "local": 1, "selftrain": 0, "seed": 0, "val_miou": 99.0, "dev_miou": 99.0,
         "control_val_miou": "", "control_dev_miou": ""},
    ]
    line = selftrain_table(rows).splitlines()[2]
    # paired val differences +3 and +1: mean 2, sample std sqrt(2); dev +1 and +1.
    assert line == "| advent | 1 | 17.00 ± 0.00 | 19.00 ± 1.41 | +3.00, +1.00 | 2.00 ± 1.41 | 1.00 ± 0.00 |"


def test_precision_table_marks_a_class_without_kept_pixels_as_missing():
    diagnostics = {"per_class": {
        "road": {"precision": 91.25, "share_of_kept": 60.0, "threshold": 0.9},
        "sky": {"precision": None, "share_of_kept": 0.0, "threshold": float("inf")},
    }}
    rows = precision_table(diagnostics).splitlines()[2:]
    assert rows == ["| road | 91.2 | 60.0 | 0.900 |", "| sky | — | 0.0 | — |"]


def test_pseudo_label_figure_has_one_row_per_dev_image_and_marks_wrong_pixels(tmp_path):
    label = np.zeros((20, 40), np.uint8)          # all road (trainId 0)
    pseudo = np.full((20, 40), IGNORE_INDEX, np.uint8)
    pseudo[:, :20] = 0                            # left half kept and right
    pseudo[:5, 20:] = 1                           # a kept strip that is wrong (sidewalk)
    np.savez(tmp_path / "dev_samples.npz", names=np.array(["dev/a.png", "dev/b.png"]),
             label_0=label, pseudo_0=pseudo, label_1=label, pseudo_1=pseudo)
    samples = load_dev_samples(tmp_path / "dev_samples.npz")
    assert [sample["name"] for sample in samples] == ["a.png", "b.png"]
    plot_pseudo_labels(samples, tmp_path / "pseudo.png")
    with Image.open(tmp_path / "pseudo.png") as image:
        rgb = np.asarray(image.convert("RGB"))
    # three 320 px panels per row; a row is 320 * 20 / 40 = 160 px plus a 40 px margin, two rows.
    assert rgb.shape[:2] == (400, 960)
    colours = {tuple(pixel) for pixel in rgb.reshape(-1, 3)}
    assert (220, 30, 30) in colours and (160, 160, 160) in colours and tuple(TRAIN_COLORS[1]) in colours
