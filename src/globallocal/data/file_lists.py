"""The on-disk layout of each dataset, listing its images, and saving/loading file lists.

A file list holds image names relative to the dataset's image folder, one per line, so that a
run is tied to the exact images it used.
"""

from __future__ import annotations

import random
from pathlib import Path

from globallocal import atomic
from globallocal.errors import UserError

IMAGE_SUFFIX = ".png"

#: The lists `prepare` writes into the lists folder and every later stage reads.
SOURCE_LIST = "source_train.txt"
TARGET_TRAIN_LIST = "target_train.txt"
TARGET_DEV_LIST = "target_dev.txt"
TARGET_VAL_LIST = "target_val.txt"

GTA5_IMAGE_DIR = "images"
GTA5_LABEL_DIR = "labels"
GTA5_LAYOUT = "<root>/images/NNNNN.png and <root>/labels/NNNNN.png"

SYNTHIA_IMAGE_DIR = "RGB"
SYNTHIA_LABEL_DIR = "GT/LABELS"
SYNTHIA_LAYOUT = "<root>/RGB/NNNNNNN.png and <root>/GT/LABELS/NNNNNNN.png"

CITYSCAPES_IMAGE_DIR = "leftImg8bit"
CITYSCAPES_LABEL_DIR = "gtFine"
CITYSCAPES_SPLITS = ("train", "val", "test")
CITYSCAPES_IMAGE_SUFFIX = "_leftImg8bit.png"
CITYSCAPES_LABEL_SUFFIX = "_gtFine_labelIds.png"
CITYSCAPES_LAYOUT = (
    "<root>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png and "
    "<root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png"
)


def check_folder(folder: Path, dataset: str, layout: str) -> None:
    """Raise UserError unless ``folder`` is an existing directory of the expected layout."""
    if not Path(folder).is_dir():
        raise UserError(
            f"{folder}: folder not found; the {dataset} root must have the layout {layout}."
        )


def check_cityscapes_split(split: str) -> None:
    """Raise UserError unless ``split`` is a Cityscapes split name."""
    if split not in CITYSCAPES_SPLITS:
        raise UserError(
            f"unknown Cityscapes split '{split}'; use one of: {', '.join(CITYSCAPES_SPLITS)}."
        )


def _list_flat(folder: Path, dataset: str, layout: str) -> list[str]:
    """Sorted names of the PNG files directly inside ``folder``."""
    check_folder(folder, dataset, layout)
    names = sorted(
        path.name
        for path in folder.iterdir()
        if path.is_file() and path.name.endswith(IMAGE_SUFFIX)
    )
    if not names:
        raise UserError(
            f"{folder}: no {IMAGE_SUFFIX} images found; expected the {dataset} layout {layout}."
        )
    return names


def list_gta5(root: Path) -> list[str]:
    """Sorted GTA5 image names, e.g. ``["00001.png", ...]``, from ``<root>/images``."""
    return _list_flat(Path(root) / GTA5_IMAGE_DIR, "GTA5", GTA5_LAYOUT)


def list_synthia(root: Path) -> list[str]:
    """Sorted SYNTHIA image names, e.g. ``["0000000.png", ...]``, from ``<root>/RGB``."""
    return _list_flat(Path(root) / SYNTHIA_IMAGE_DIR, "SYNTHIA-RAND-CITYSCAPES", SYNTHIA_LAYOUT)


def list_cityscapes(root: Path, split: str) -> list[str]:
    """Sorted Cityscapes image names relative to ``<root>/leftImg8bit/<split>``.

    E.g. ``["aachen/aachen_000000_000019_leftImg8bit.png", ...]`` (always with "/").
    """
    check_cityscapes_split(split)
    folder = Path(root) / CITYSCAPES_IMAGE_DIR / split
    check_folder(folder, "Cityscapes", CITYSCAPES_LAYOUT)
    names = sorted(
        path.relative_to(folder).as_posix()
        for path in folder.glob(f"*/*{CITYSCAPES_IMAGE_SUFFIX}")
        if path.is_file()
    )
    if not names:
        raise UserError(
            f"{folder}: no *{CITYSCAPES_IMAGE_SUFFIX} images in city subfolders; "
            f"expected the Cityscapes layout {CITYSCAPES_LAYOUT}."
        )
    return names


def split_dev(names: list[str], dev_size: int, seed: int) -> tuple[list[str], list[str]]:
    """Carve a seeded, fixed dev subset out of ``names``: returns (rest, dev), both sorted.

    The draw depends only on the sorted names, the size and the seed, so the same dataset always gives
    the same dev split; the rest keeps at least one image.
    """
    if dev_size >= len(names):
        raise UserError(
            f"params key 'prepare.dev_size' is {dev_size} but target train has only {len(names)} images; "
            "choose a dev split smaller than target train"
        )
    dev = set(random.Random(seed).sample(sorted(names), dev_size))
    return sorted(set(names) - dev), sorted(dev)


def write_list(path: Path, names: list[str]) -> None:
    """Write ``names`` one per line (UTF-8, trailing newline), creating parent folders; whole or absent."""
    atomic.write_text(Path(path), "".join(f"{name}\n" for name in names))


def read_list(path: Path) -> list[str]:
    """Read a file list written by write_list; blank lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"{path}: file list not found; the prepare stage (or file_lists.write_list) writes it."
        )
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    names = [name for name in names if name]
    if not names:
        raise UserError(
            f"{path}: file list is empty; rerun the prepare stage (or write_list) to list images."
        )
    return names
