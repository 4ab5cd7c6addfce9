"""Dataset loaders on tiny fixtures written in the exact real on-disk formats."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from globallocal.data.cityscapes import CityscapesDataset, label_path_for
from globallocal.data.file_lists import (
    list_cityscapes,
    list_gta5,
    list_synthia,
    read_list,
    write_list,
)
from globallocal.data.gta5 import GTA5Dataset
from globallocal.data.images import read_label_ids, read_rgb
from globallocal.data.synthia import SynthiaDataset
from globallocal.errors import UserError

# Cityscapes labelIds and the trainIds they must become: road 7->0, sidewalk 8->1, building 11->2,
# sky 23->10, rider 25->12, car 26->13, bicycle 33->18; unlabeled 0 and ego vehicle 1 -> ignore.
LABEL_IDS = np.array([[7, 26, 0, 1], [8, 11, 25, 33], [23, 7, 7, 26]], dtype=np.uint8)
TRAIN_IDS = np.array([[0, 13, 255, 255], [1, 2, 12, 18], [10, 0, 0, 13]], dtype=np.int64)
# SYNTHIA class ids: road 3->0, sidewalk 4->1, car 8->13, sky 1->10;
# void 0 and lanemarking 13 -> ignore.
SYNTHIA_IDS = np.array([[3, 4, 0], [8, 1, 13]], dtype=np.uint16)
SYNTHIA_TRAIN_IDS = np.array([[0, 1, 255], [13, 10, 255]], dtype=np.int64)
PIXEL_RGB = (10, 20, 30)
CITYSCAPES_NAME = "aachen/aachen_000000_000019_leftImg8bit.png"


def _solid_rgb(width: int, height: int, rgb=PIXEL_RGB) -> np.ndarray:
    return np.tile(np.array(rgb, dtype=np.uint8), (height, width, 1))


def _save_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)


def _save_palette_label(path: Path, label_ids: np.ndarray) -> None:
    """8-bit 'P' PNG as GTA5 ships it: pixel = palette index = labelId, palette colours differ."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = label_ids.shape
    image = Image.frombytes("P", (width, height), label_ids.tobytes())
    palette = [(3 * index + channel * 85) % 256 for index in range(256) for channel in range(3)]
    image.putpalette(palette)
    image.save(path)


def _save_grey_label(path: Path, label_ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(label_ids).save(path)


def _save_synthia_label(path: Path, class_ids: np.ndarray, dtype=np.uint16) -> None:
    """3-channel PNG in OpenCV (B, G, R) order: class id in R, junk instance ids in G and B."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.stack([class_ids + 500, class_ids + 1000, class_ids], axis=2).astype(dtype)
    assert cv2.imwrite(str(path), pixels)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _gta5_root(tmp_path: Path, label_ids: np.ndarray = LABEL_IDS) -> Path:
    root = tmp_path / "gta5"
    height, width = label_ids.shape
    _save_rgb(root / "images" / "00001.png", _solid_rgb(width, height))
    _save_palette_label(root / "labels" / "00001.png", label_ids)
    return root


def _cityscapes_root(tmp_path: Path, split: str = "val") -> Path:
    root = tmp_path / "cityscapes"
    height, width = LABEL_IDS.shape
    _save_rgb(root / "leftImg8bit" / split / CITYSCAPES_NAME, _solid_rgb(width, height))
    _save_grey_label(
        root / "gtFine" / split / "aachen" / "aachen_000000_000019_gtFine_labelIds.png", LABEL_IDS
    )
    return root


def _synthia_root(tmp_path: Path) -> Path:
    root = tmp_path / "synthia"
    height, width = SYNTHIA_IDS.shape
    _save_rgb(root / "RGB" / "0000000.png", _solid_rgb(width, height))
    _save_synthia_label(root / "GT" / "LABELS" / "0000000.png", SYNTHIA_IDS)
    return root


# --- images.py -------------------------------------------------------------------------------


def test_read_label_ids_returns_palette_indices_not_colours(tmp_path):
    path = tmp_path / "label.png"
    _save_palette_label(path, LABEL_IDS)
    assert Image.open(path).mode == "P"
    np.testing.assert_array_equal(read_label_ids(path), LABEL_IDS)


def test_read_label_ids_rejects_rgb_png(tmp_path):
    path = tmp_path / "colour_label.png"
    _save_rgb(path, _solid_rgb(4, 3))
    with pytest.raises(UserError, match="mode 'RGB'") as error:
        read_label_ids(path)
    assert str(path) in str(error.value)


def test_read_rgb_returns_pixels_in_rgb_order(tmp_path):
    path = tmp_path / "image.png"
    _save_rgb(path, _solid_rgb(2, 1))
    np.testing.assert_array_equal(read_rgb(path), [[PIXEL_RGB, PIXEL_RGB]])


def test_read_rgb_missing_file_raises_user_error_naming_it(tmp_path):
    path = tmp_path / "absent.png"
    with pytest.raises(UserError, match="not found") as error:
        read_rgb(path)
    assert str(path) in str(error.value)


def test_read_rgb_truncated_png_raises_user_error_naming_it(tmp_path):
    path = tmp_path / "image.png"
    _save_rgb(path, np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    _truncate(path)
    with pytest.raises(UserError, match="corrupt") as error:
        read_rgb(path)
    assert str(path) in str(error.value)


def test_read_label_ids_non_image_file_raises_user_error_naming_it(tmp_path):
    path = tmp_path / "label.png"
    path.write_bytes(b"not a png")
    with pytest.raises(UserError, match="corrupt") as error:
        read_label_ids(path)
    assert str(path) in str(error.value)


# --- file_lists.py ---------------------------------------------------------------------------


def test_list_gta5_returns_sorted_png_names_only(tmp_path):
    for name in ["00002.png", "00010.png", "00001.png", "notes.txt"]:
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "images" / name).write_bytes(b"")
    (tmp_path / "images" / "nested").mkdir()
    assert list_gta5(tmp_path) == ["00001.png", "00002.png", "00010.png"]


def test_list_synthia_returns_sorted_png_names(tmp_path):
    (tmp_path / "RGB").mkdir()
    for name in ["0000001.png", "0000000.png"]:
        (tmp_path / "RGB" / name).write_bytes(b"")
    assert list_synthia(tmp_path) == ["0000000.png", "0000001.png"]


def test_list_cityscapes_returns_city_relative_image_names(tmp_path):
    folder = tmp_path / "leftImg8bit" / "train"
    for name in [
        "bochum/bochum_000000_000313_leftImg8bit.png",
        "aachen/aachen_000001_000019_leftImg8bit.png",
        "aachen/aachen_000000_000019_leftImg8bit.png",
        "aachen/aachen_000000_000019_gtFine_color.png",
    ]:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"")
    assert list_cityscapes(tmp_path, "train") == [
        "aachen/aachen_000000_000019_leftImg8bit.png",
        "aachen/aachen_000001_000019_leftImg8bit.png",
        "bochum/bochum_000000_000313_leftImg8bit.png",
    ]


@pytest.mark.parametrize(
    ("lister", "missing"),
    [
        (list_gta5, "images"),
        (list_synthia, "RGB"),
        (lambda root: list_cityscapes(root, "val"), "leftImg8bit/val"),
    ],
)
def test_listing_a_missing_folder_names_it_and_the_layout(tmp_path, lister, missing):
    with pytest.raises(UserError, match="layout") as error:
        lister(tmp_path)
    assert str(tmp_path / missing) in str(error.value)


def test_listing_an_empty_folder_raises_user_error_naming_it(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(UserError, match="no .png images") as error:
        list_gta5(tmp_path)
    assert str(tmp_path / "images") in str(error.value)


def test_write_list_writes_one_name_per_line_with_trailing_newline(tmp_path):
    path = tmp_path / "lists" / "val.txt"
    write_list(path, ["a/b_leftImg8bit.png", "c.png"])
    assert path.read_bytes() == b"a/b_leftImg8bit.png\nc.png\n"
    assert read_list(path) == ["a/b_leftImg8bit.png", "c.png"]


def test_read_list_missing_file_raises_user_error_naming_it(tmp_path):
    with pytest.raises(UserError, match="not found") as error:
        read_list(tmp_path / "train.txt")
    assert str(tmp_path / "train.txt") in str(error.value)


# --- GTA5 ------------------------------------------------------------------------------------


def test_gta5_item_maps_palette_label_ids_to_train_ids(tmp_path):
    item = GTA5Dataset(_gta5_root(tmp_path), image_size=None)[0]
    assert item["name"] == "00001.png"
    assert item["label"].dtype == torch.int64
    np.testing.assert_array_equal(item["label"].numpy(), TRAIN_IDS)


def test_gta5_item_image_is_caffe_normalised_bgr(tmp_path):
    image = GTA5Dataset(_gta5_root(tmp_path), image_size=None)[0]["image"]
    assert image.shape == (3, 3, 4)
    expected = [30 - 104.00698793, 20 - 116.66876762, 10 - 122.67891434]
    np.testing.assert_allclose(image[:, 2, 3].numpy(), expected, atol=1e-5)


def test_gta5_resizes_image_and_label_to_image_size(tmp_path):
    item = GTA5Dataset(_gta5_root(tmp_path), image_size=(8, 6))[0]
    assert item["image"].shape == (3, 6, 8)
    expected = np.repeat(np.repeat(TRAIN_IDS, 2, axis=0), 2, axis=1)
    np.testing.assert_array_equal(item["label"].numpy(), expected)


def test_gta5_label_smaller_than_image_is_resized_to_match(tmp_path):
    root = _gta5_root(tmp_path)
    _save_rgb(root / "images" / "00001.png", _solid_rgb(8, 6))  # label stays 4 x 3
    item = GTA5Dataset(root, image_size=None)[0]
    assert item["image"].shape == (3, 6, 8)
    expected = np.repeat(np.repeat(TRAIN_IDS, 2, axis=0), 2, axis=1)
    np.testing.assert_array_equal(item["label"].numpy(), expected)


def test_gta5_without_label_resize_keeps_native_label(tmp_path):
    item = GTA5Dataset(_gta5_root(tmp_path), image_size=(8, 6), resize_label=False)[0]
    assert item["image"].shape == (3, 6, 8)
    np.testing.assert_array_equal(item["label"].numpy(), TRAIN_IDS)


def test_gta5_missing_label_names_image_and_label_paths(tmp_path):
    root = _gta5_root(tmp_path)
    (root / "labels" / "00001.png").unlink()
    with pytest.raises(UserError, match="label file not found") as error:
        GTA5Dataset(root)[0]
    assert str(root / "labels" / "00001.png") in str(error.value)
    assert str(root / "images" / "00001.png") in str(error.value)


def test_gta5_unknown_label_id_names_file_and_value(tmp_path):
    root = _gta5_root(tmp_path, np.array([[7, 40], [26, 0]], dtype=np.uint8))
    with pytest.raises(UserError, match="pixel value 40 is not a Cityscapes labelId") as error:
        GTA5Dataset(root)[0]
    assert str(root / "labels" / "00001.png") in str(error.value)


def test_gta5_truncated_label_raises_user_error_naming_it(tmp_path):
    rng = np.random.default_rng(3)
    root = _gta5_root(tmp_path, rng.integers(0, 34, (64, 64), dtype=np.uint8))
    _truncate(root / "labels" / "00001.png")
    with pytest.raises(UserError, match="corrupt") as error:
        GTA5Dataset(root, image_size=None)[0]
    assert str(root / "labels" / "00001.png") in str(error.value)


def test_gta5_uses_the_given_names_in_order(tmp_path):
    root = _gta5_root(tmp_path)
    _save_rgb(root / "images" / "00002.png", _solid_rgb(4, 3))
    _save_palette_label(root / "labels" / "00002.png", LABEL_IDS)
    dataset = GTA5Dataset(root, names=["00002.png", "00001.png"])
    assert len(dataset) == 2
    assert dataset.image_path(0) == root / "images" / "00002.png"
    assert dataset.label_path(1) == root / "labels" / "00001.png"


# --- Cityscapes ------------------------------------------------------------------------------


def test_cityscapes_label_path_for_maps_left_image_to_gtfine_label_ids():
    assert label_path_for(Path("/data/cs"), "val", CITYSCAPES_NAME) == Path(
        "/data/cs/gtFine/val/aachen/aachen_000000_000019_gtFine_labelIds.png"
    )


def test_cityscapes_item_maps_label_ids_to_train_ids(tmp_path):
    dataset = CityscapesDataset(_cityscapes_root(tmp_path), "val", image_size=None)
    item = dataset[0]
    assert item["name"] == CITYSCAPES_NAME
    assert item["image"].shape == (3, 3, 4)
    np.testing.assert_array_equal(item["label"].numpy(), TRAIN_IDS)


def test_cityscapes_without_labels_needs_no_gtfine_and_has_no_label(tmp_path):
    root = tmp_path / "cityscapes"
    _save_rgb(root / "leftImg8bit" / "test" / CITYSCAPES_NAME, _solid_rgb(4, 2))
    item = CityscapesDataset(root, "test", image_size=(2, 1), with_labels=False)[0]
    assert set(item) == {"image", "name"}
    assert item["image"].shape == (3, 1, 2)


def test_cityscapes_unknown_split_raises_user_error_naming_it(tmp_path):
    with pytest.raises(UserError, match="split 'training'.*train, val, test"):
        CityscapesDataset(_cityscapes_root(tmp_path), "training")


# --- SYNTHIA ---------------------------------------------------------------------------------


def test_synthia_item_maps_red_channel_class_ids_to_train_ids(tmp_path):
    item = SynthiaDataset(_synthia_root(tmp_path), image_size=None)[0]
    assert item["name"] == "0000000.png"
    np.testing.assert_array_equal(item["label"].numpy(), SYNTHIA_TRAIN_IDS)


def test_synthia_8_bit_label_raises_user_error_naming_it(tmp_path):
    root = _synthia_root(tmp_path)
    label_path = root / "GT" / "LABELS" / "0000000.png"
    _save_synthia_label(label_path, SYNTHIA_IDS, dtype=np.uint8)
    with pytest.raises(UserError, match="16-bit 3-channel PNG, got 8-bit 3-channel") as error:
        SynthiaDataset(root)[0]
    assert str(label_path) in str(error.value)


def test_split_dev_is_seeded_sorted_disjoint_and_complete():
    from globallocal.data.file_lists import split_dev

    names = [f"c/c_{i:06d}_000019_leftImg8bit.png" for i in range(10)]
    rest, dev = split_dev(list(reversed(names)), 3, seed=0)
    assert len(dev) == 3 and dev == sorted(dev) and rest == sorted(rest)
    assert sorted(rest + dev) == names and not set(rest) & set(dev)
    assert split_dev(names, 3, seed=0) == (rest, dev)  # input order does not matter
    assert split_dev(names, 3, seed=1)[1] != dev
    with pytest.raises(UserError, match="prepare.dev_size"):
        split_dev(names, 10, seed=0)
