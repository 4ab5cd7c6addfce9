"""prepare's data check on tiny copies of the real layouts: what it counts, and each bad input it
stops on, naming the file."""

from __future__ import annotations

import os
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image
from support.real_layouts import (
    cityscapes_files,
    make_cityscapes,
    make_gta5,
    make_synthia,
    save_palette_label,
    save_synthia_label,
)

from globallocal.data import check
from globallocal.data.cityscapes import read_cityscapes_train_ids
from globallocal.data.fingerprint import stat_fingerprint
from globallocal.errors import UserError


@pytest.fixture
def gta5_roots(tmp_path):
    return make_gta5(tmp_path / "GTA5"), make_cityscapes(tmp_path / "Cityscapes")


def run_check(roots, kind="gta5"):
    return check.check_datasets(kind, *roots, progress=False, threads=1)


def test_counts_images_per_split_and_names_size_mismatches_and_blank_images(gta5_roots):
    report = run_check(gta5_roots)
    assert report.summary() == {
        "images": {"source": 4, "target_train": 4, "target_val": 3},
        "size_mismatches": {"source": 1, "target_train": 0, "target_val": 0},
        "blank_images": {"source": 1, "target_train": 0, "target_val": 0},
    }
    assert report.findings()["source"] == {"size_mismatches": ["00002.png"], "blank_images": ["00003.png"]}


def test_class_frequencies_are_shares_of_labelled_pixels_of_source_and_target_train(gta5_roots):
    records = {row["class"]: row for row in run_check(gta5_roots).class_frequencies()}
    assert len(records) == 19
    for domain in ("source", "target_train"):
        assert sum(row[domain] for row in records.values()) == pytest.approx(1.0, abs=1e-5)
        # The bands hold sky, building, car and road only (labelId 0 is ignored, not counted).
        present = {name for name, row in records.items() if row[domain] > 0}
        assert present == {"sky", "building", "car", "road"}


def test_synthia_layout_is_checked_with_its_16_bit_labels(tmp_path):
    roots = make_synthia(tmp_path / "SYNTHIA"), make_cityscapes(tmp_path / "Cityscapes")
    report = run_check(roots, "synthia")
    assert report.summary()["images"] == {"source": 4, "target_train": 4, "target_val": 3}
    present = {row["class"] for row in report.class_frequencies() if row["source"] > 0}
    assert present == {"sky", "building", "car", "road"}


def test_content_fingerprint_changes_with_one_label_pixel_only(gta5_roots):
    first = run_check(gta5_roots).fingerprint
    assert run_check(gta5_roots).fingerprint == first
    label = gta5_roots[0] / "labels" / "00001.png"
    ids = np.array(Image.open(label))
    ids[0, 0] = 8  # sidewalk instead of sky
    save_palette_label(label, ids)
    assert run_check(gta5_roots).fingerprint != first


def test_written_reports_hold_summary_findings_frequencies_and_fingerprint(gta5_roots, tmp_path):
    report = run_check(gta5_roots)
    check.write_reports(report, tmp_path / "reports", tmp_path / "lists")
    assert {p.name for p in (tmp_path / "reports").iterdir()} == {
        "summary.json", "findings.json", "class_frequencies.json"}
    assert (tmp_path / "lists" / "content_fingerprint.txt").read_text() == report.fingerprint + "\n"


# ---- bad inputs: each stops the check with the file named -----------------------------------------

def test_missing_folder_prints_the_expected_tree(tmp_path):
    roots = make_gta5(tmp_path / "GTA5"), make_cityscapes(tmp_path / "Cityscapes")
    shutil.rmtree(roots[1] / "gtFine" / "val")
    with pytest.raises(UserError) as error:
        run_check(roots)
    message = str(error.value)
    assert str(roots[1] / "gtFine" / "val") in message and "data.target_root" in message
    assert "gtFine/train/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png" in message


def test_missing_label_is_named_with_its_image(gta5_roots):
    (gta5_roots[0] / "labels" / "00004.png").unlink()
    with pytest.raises(UserError, match="1 image.*no label file") as error:
        run_check(gta5_roots)
    assert str(gta5_roots[0] / "labels" / "00004.png") in str(error.value)


def test_truncated_png_is_named(gta5_roots):
    image, _ = cityscapes_files(gta5_roots[1], "train", 2)
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="cannot decode") as error:
        run_check(gta5_roots)
    assert str(image) in str(error.value)


def test_rgb_colour_label_where_palette_ids_are_expected_is_named(gta5_roots):
    label = gta5_roots[0] / "labels" / "00001.png"
    Image.open(label).convert("RGB").save(label)
    with pytest.raises(UserError, match="mode 'RGB'") as error:
        run_check(gta5_roots)
    assert str(label) in str(error.value)


def test_empty_split_is_named(gta5_roots):
    for city in (gta5_roots[1] / "leftImg8bit" / "val").iterdir():
        shutil.rmtree(city)
    with pytest.raises(UserError, match="no .*_leftImg8bit.png images") as error:
        run_check(gta5_roots)
    assert str(gta5_roots[1] / "leftImg8bit" / "val") in str(error.value)


def test_label_id_out_of_range_is_named(gta5_roots):
    _, label = cityscapes_files(gta5_roots[1], "val", 1)
    ids = np.array(Image.open(label))
    ids[3, 3] = 40  # Cityscapes labelIds stop at 33
    Image.fromarray(ids).save(label)
    with pytest.raises(UserError, match=r"pixel value 40 is not a Cityscapes labelId \(0\.\.33\)") as error:
        run_check(gta5_roots)
    assert str(label) in str(error.value)


def test_the_check_reports_label_problems_in_the_loaders_words(gta5_roots):
    """One decoder per format: the data check and the training loaders give the same message."""
    _, label = cityscapes_files(gta5_roots[1], "val", 1)
    ids = np.array(Image.open(label))
    ids[3, 3] = 40
    Image.fromarray(ids).save(label)
    with pytest.raises(UserError) as from_loader:
        read_cityscapes_train_ids(label)
    with pytest.raises(UserError) as from_check:
        run_check(gta5_roots)
    assert str(from_loader.value) in str(from_check.value)


def test_synthia_class_id_out_of_range_is_named(tmp_path):
    roots = make_synthia(tmp_path / "SYNTHIA"), make_cityscapes(tmp_path / "Cityscapes")
    label = roots[0] / "GT" / "LABELS" / "0000002.png"
    class_ids = cv2.imread(str(label), cv2.IMREAD_UNCHANGED)[:, :, 2].copy()
    class_ids[0, 0] = 99
    save_synthia_label(label, class_ids)
    with pytest.raises(UserError, match="class id 99 is out of range") as error:
        run_check(roots, "synthia")
    assert str(label) in str(error.value)


def test_every_broken_file_of_the_pass_is_named_together(gta5_roots):
    broken = [gta5_roots[0] / "labels" / "00001.png", gta5_roots[0] / "images" / "00003.png"]
    for path in broken:
        path.write_bytes(b"not a png")
    with pytest.raises(UserError, match="2 broken file") as error:
        run_check(gta5_roots)
    assert all(str(path) in str(error.value) for path in broken)


# ---- the stat fingerprint that decides whether prepare re-runs -------------------------------------

def test_stat_fingerprint_is_stable_and_sees_a_replaced_file(gta5_roots):
    first = stat_fingerprint("gta5", *gta5_roots)
    assert first["files"] == 8 + 14 and stat_fingerprint("gta5", *gta5_roots) == first
    image = gta5_roots[0] / "images" / "00001.png"
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert stat_fingerprint("gta5", *gta5_roots) != first
