"""The convergence rule of benchmarks/source_curve.py and its held-out source images."""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from source_curve import converged_length  # noqa: E402

from globallocal.data.synthetic import generate_example, write_source_examples  # noqa: E402
from support.configs import synthetic_config


def rows(pairs):
    return [{"iterations": n, "source_heldout_miou": m} for n, m in pairs]


def test_converged_is_the_first_length_whose_doubling_adds_less_than_flat():
    # 300 -> 600 adds 4.0, 600 -> 1200 adds 0.9 (< 1.0): 600 is converged.
    assert converged_length(rows([(300, 20.0), (600, 24.0), (1200, 24.9), (2400, 25.0)]), 1.0) == 600
    # A drop counts as flat too.
    assert converged_length(rows([(300, 20.0), (600, 19.0)]), 1.0) == 300


def test_no_converged_length_when_every_doubling_gains_or_a_doubling_is_missing():
    assert converged_length(rows([(300, 20.0), (600, 22.0), (1200, 24.0)]), 1.0) is None
    assert converged_length(rows([(300, 20.0), (1200, 20.1)]), 1.0) is None  # 600 was not run


def test_held_out_source_images_are_new_indices_written_in_the_gta5_layout(tmp_path):
    config = synthetic_config(num_source=2, num_target_train=1, num_target_val=1, source_size=(96, 64),
                             target_size=(96, 48))
    names = write_source_examples(tmp_path, config, range(2, 4))
    assert names == ["00003.png", "00004.png"]  # GTA5 names count from 1: indices 2, 3 follow the 2 written
    rgb, label_ids = generate_example(config, "source", 3)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "gta5" / "images" / names[1])), rgb)
    written = Image.open(tmp_path / "gta5" / "labels" / names[1])
    assert written.mode == "P"
    np.testing.assert_array_equal(np.asarray(written), label_ids)
