"""The embedded synthetic benchmark: on-disk layouts, label formats, determinism, and the domain gap."""

import functools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from globallocal.data.labels import CLASS_NAMES, NUM_CLASSES, TRAIN_TO_LABEL_ID, label_id_to_train_id_lut
from globallocal.data.synthetic import (
    MARKER_FILE,
    SOURCE,
    TARGET_TRAIN,
    SyntheticConfig,
    generate_benchmark,
    generate_example,
)
from globallocal.errors import UserError
from support.configs import synthetic_config

TINY = synthetic_config(seed=0, num_source=4, num_target_train=4, num_target_val=2,
                       source_size=(128, 72), target_size=(128, 64))
#: Both domains at one size, so that layout statistics can be compared pixel for pixel.
SAME_SIZE = synthetic_config(seed=0, source_size=(128, 64), target_size=(128, 64))
SAMPLE_IMAGES = 16
#: Layout shares are compared over more images: object counts differ between domains by design.
LAYOUT_SAMPLE_IMAGES = 48
UNLABELED, EGO_VEHICLE, RECTIFICATION_BORDER = 0, 1, 2
ROAD_LABEL_ID, ROAD_COLOR = 7, (128, 64, 128)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    generate_benchmark(root, TINY)
    return root


def relative_files(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def sample(split: str, count: int = SAMPLE_IMAGES) -> list[tuple[np.ndarray, np.ndarray]]:
    return [generate_example(SAME_SIZE, split, index) for index in range(count)]


def test_files_are_written_in_the_gta5_and_cityscapes_layouts(tiny_root):
    expected = [
        "cityscapes/gtFine/train/altbrunn/altbrunn_000000_000019_gtFine_labelIds.png",
        "cityscapes/gtFine/train/altbrunn/altbrunn_000001_000019_gtFine_labelIds.png",
        "cityscapes/gtFine/train/bergheide/bergheide_000000_000019_gtFine_labelIds.png",
        "cityscapes/gtFine/train/kesselfurt/kesselfurt_000000_000019_gtFine_labelIds.png",
        "cityscapes/gtFine/val/lindmoor/lindmoor_000000_000019_gtFine_labelIds.png",
        "cityscapes/gtFine/val/ostergrau/ostergrau_000000_000019_gtFine_labelIds.png",
        "cityscapes/leftImg8bit/train/altbrunn/altbrunn_000000_000019_leftImg8bit.png",
        "cityscapes/leftImg8bit/train/altbrunn/altbrunn_000001_000019_leftImg8bit.png",
        "cityscapes/leftImg8bit/train/bergheide/bergheide_000000_000019_leftImg8bit.png",
        "cityscapes/leftImg8bit/train/kesselfurt/kesselfurt_000000_000019_leftImg8bit.png",
        "cityscapes/leftImg8bit/val/lindmoor/lindmoor_000000_000019_leftImg8bit.png",
        "cityscapes/leftImg8bit/val/ostergrau/ostergrau_000000_000019_leftImg8bit.png",
        "gta5/images/00001.png", "gta5/images/00002.png", "gta5/images/00003.png", "gta5/images/00004.png",
        "gta5/labels/00001.png", "gta5/labels/00002.png", "gta5/labels/00003.png", "gta5/labels/00004.png",
        MARKER_FILE,
    ]
    assert relative_files(tiny_root) == expected


def test_images_are_rgb_at_the_configured_sizes(tiny_root):
    source = Image.open(tiny_root / "gta5/images/00001.png")
    target = Image.open(tiny_root / "cityscapes/leftImg8bit/val/lindmoor/lindmoor_000000_000019_leftImg8bit.png")
    assert (source.mode, source.size) == ("RGB", (128, 72))
    assert (target.mode, target.size) == ("RGB", (128, 64))


def test_source_label_is_a_palette_png_of_label_ids_with_cityscapes_colours(tiny_root):
    label = Image.open(tiny_root / "gta5/labels/00001.png")
    assert (label.mode, label.size) == ("P", (128, 72))
    assert tuple(label.getpalette()[3 * ROAD_LABEL_ID: 3 * ROAD_LABEL_ID + 3]) == ROAD_COLOR
    # The bottom-centre pixel is the ego-vehicle hood, stored as the raw labelId, not a colour.
    assert np.asarray(label)[-1, 64] == EGO_VEHICLE


def test_target_label_is_a_grayscale_png_of_label_ids(tiny_root):
    label = Image.open(tiny_root / "cityscapes/gtFine/train/altbrunn/altbrunn_000000_000019_gtFine_labelIds.png")
    assert (label.mode, label.size) == ("L", (128, 64))
    assert np.asarray(label)[-1, 64] == EGO_VEHICLE


def test_source_has_unlabeled_props_and_an_ego_hood(tiny_root):
    labels = [np.asarray(Image.open(path)) for path in sorted((tiny_root / "gta5/labels").iterdir())]
    assert all((label == EGO_VEHICLE).any() for label in labels)
    assert any((label == UNLABELED).any() for label in labels)


def test_target_void_is_only_ego_hood_and_rectification_border():
    ids = np.unique(np.concatenate([label.ravel() for _, label in sample(TARGET_TRAIN)]))
    void = set(ids.tolist()) - set(TRAIN_TO_LABEL_ID)
    assert void == {EGO_VEHICLE, RECTIFICATION_BORDER}


def test_label_ids_are_train_classes_or_void_that_maps_to_ignore(tiny_root):
    label_files = list((tiny_root / "gta5/labels").iterdir()) + list((tiny_root / "cityscapes/gtFine").rglob("*.png"))
    ids = set(np.unique(np.concatenate([np.asarray(Image.open(path)).ravel() for path in label_files])).tolist())
    assert ids <= set(TRAIN_TO_LABEL_ID) | {UNLABELED, EGO_VEHICLE, RECTIFICATION_BORDER}
    assert (label_id_to_train_id_lut()[[UNLABELED, EGO_VEHICLE, RECTIFICATION_BORDER]] == 255).all()


def test_same_seed_writes_byte_identical_files(tiny_root, tmp_path):
    generate_benchmark(tmp_path, TINY)
    for name in relative_files(tiny_root):
        assert (tmp_path / name).read_bytes() == (tiny_root / name).read_bytes(), name


def test_different_seed_writes_different_images(tiny_root, tmp_path):
    other = synthetic_config(seed=1, num_source=1, num_target_train=1, num_target_val=1,
                            source_size=TINY.source_size, target_size=TINY.target_size)
    generate_benchmark(tmp_path, other)
    for name in ("gta5/images/00001.png", "gta5/labels/00001.png",
                 "cityscapes/leftImg8bit/train/altbrunn/altbrunn_000000_000019_leftImg8bit.png"):
        assert (tmp_path / name).read_bytes() != (tiny_root / name).read_bytes(), name


def test_an_image_does_not_depend_on_how_many_are_generated():
    fewer = synthetic_config(seed=0, num_source=1, source_size=(128, 64))
    more = synthetic_config(seed=0, num_source=50, source_size=(128, 64))
    for left, right in zip(generate_example(fewer, SOURCE, 0), generate_example(more, SOURCE, 0)):
        np.testing.assert_array_equal(left, right)


def test_every_class_appears_in_both_domains():
    lut = label_id_to_train_id_lut()
    for split in (SOURCE, TARGET_TRAIN):
        present = set(np.unique(np.concatenate([lut[label].ravel() for _, label in sample(split)])).tolist())
        missing = [CLASS_NAMES[c] for c in range(NUM_CLASSES) if c not in present]
        assert missing == [], split


@functools.cache
def class_statistics(split: str, count: int = SAMPLE_IMAGES) -> tuple[np.ndarray, np.ndarray]:
    """(19, 3) mean RGB and (19,) pixel fraction of each class over the first count images of a split."""
    lut = label_id_to_train_id_lut()
    colour_sums, pixels = np.zeros((NUM_CLASSES, 3)), np.zeros(NUM_CLASSES)
    for rgb, label in sample(split, count):
        train_ids = lut[label].ravel()
        valid = train_ids < NUM_CLASSES
        pixels += np.bincount(train_ids[valid], minlength=NUM_CLASSES)
        for channel in range(3):
            colour_sums[:, channel] += np.bincount(train_ids[valid], rgb[..., channel].ravel()[valid], NUM_CLASSES)
    return colour_sums / np.maximum(pixels, 1)[:, None], pixels / pixels.sum()


def test_every_class_looks_different_in_the_two_domains():
    source_rgb, _ = class_statistics(SOURCE)
    target_rgb, _ = class_statistics(TARGET_TRAIN)
    distance = np.linalg.norm(source_rgb - target_rgb, axis=1)
    assert distance.min() > 15, dict(zip(CLASS_NAMES, distance.round(1)))


@pytest.mark.parametrize("name", ["road", "sky", "building", "sidewalk", "vegetation"])
def test_layout_classes_cover_similar_shares_in_the_two_domains(name):
    _, source_share = class_statistics(SOURCE, LAYOUT_SAMPLE_IMAGES)
    _, target_share = class_statistics(TARGET_TRAIN, LAYOUT_SAMPLE_IMAGES)
    index = CLASS_NAMES.index(name)
    assert source_share[index] == pytest.approx(target_share[index], abs=0.04)


def test_summary_counts_images_and_class_frequencies_of_the_written_labels(tiny_root, tmp_path):
    summary = generate_benchmark(tmp_path, TINY)
    assert (summary["num_source"], summary["num_target_train"], summary["num_target_val"]) == (4, 4, 2)
    lut = label_id_to_train_id_lut()
    labels = [lut[np.asarray(Image.open(path))] for path in (tiny_root / "gta5/labels").iterdir()]
    pixels = np.bincount(np.concatenate([label.ravel() for label in labels]), minlength=256)[:NUM_CLASSES]
    expected = {name: round(count / pixels.sum(), 6) for name, count in zip(CLASS_NAMES, pixels.tolist())}
    assert summary["class_frequencies"]["source"] == expected
    assert summary["class_image_counts"]["target"]["road"] == 6


def test_rerun_replaces_a_benchmark_it_wrote(tmp_path):
    generate_benchmark(tmp_path, TINY)
    smaller = synthetic_config(num_source=1, num_target_train=1, num_target_val=1,
                              source_size=TINY.source_size, target_size=TINY.target_size)
    generate_benchmark(tmp_path, smaller)
    assert sorted(path.name for path in (tmp_path / "gta5/images").iterdir()) == ["00001.png"]


def test_refuses_to_overwrite_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "gta5").mkdir()
    with pytest.raises(UserError, match="did not write"):
        generate_benchmark(tmp_path, TINY)


def test_config_rejects_an_image_too_small_to_draw_a_street():
    with pytest.raises(UserError, match="target_size"):
        synthetic_config(target_size=(32, 16))
