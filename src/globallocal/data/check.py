"""Checking a source + target dataset before any training, in one pass over every file.

``check_datasets`` verifies, in this order, and stops at the first kind of problem with a message
naming the file(s):

1. the layout: every expected folder exists (a missing one prints the expected tree);
2. no split is empty, and every listed image has its label file;
3. every image and label decodes (truncated PNGs, colour renderings where label ids are expected,
   label ids out of range are errors), read by the loaders' own decoders (``read_cityscapes_train_ids``,
   ``read_synthia_train_ids``), so the check and training say the same about a file.

It also counts images per split, image/label size mismatches (the loaders resize the label with
NEAREST; GTA5 has a few such pairs), blank (single-colour) images (GTA5 has two), per-class pixel
counts of the source and target-train labels, and a sha256 content fingerprint of every file read,
so that the stages after ``prepare`` re-run exactly when the data's content changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from globallocal import atomic
from globallocal.data.cityscapes import label_path_for, read_cityscapes_train_ids
from globallocal.data.file_lists import (
    CITYSCAPES_IMAGE_DIR,
    CITYSCAPES_LABEL_DIR,
    GTA5_IMAGE_DIR,
    GTA5_LABEL_DIR,
    SYNTHIA_IMAGE_DIR,
    SYNTHIA_LABEL_DIR,
    list_cityscapes,
    list_gta5,
    list_synthia,
)
from globallocal.data.images import open_image
from globallocal.data.labels import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
from globallocal.data.synthia import read_synthia_train_ids
from globallocal.errors import UserError

SOURCE = "source"
TARGET_TRAIN = "target_train"
TARGET_VAL = "target_val"
#: The check stops once this many broken files are found, and names them all.
MAX_REPORTED_ERRORS = 20
#: Files named in an error message or a findings list.
SHOWN_FILES = 10
#: Decoding threads: PNG decoding and hashing release the GIL.
CHECK_THREADS = 4

EXPECTED_TREES = {
    "gta5": """<source_root>/
  images/00001.png ...        RGB frames
  labels/00001.png ...        8-bit palette PNGs, pixel = Cityscapes labelId""",
    "synthia": """<source_root>/
  RGB/0000000.png ...         RGB frames
  GT/LABELS/0000000.png ...   16-bit 3-channel PNGs, class id in the R channel""",
    "cityscapes": """<target_root>/
  leftImg8bit/train/<city>/<city>_<seq>_<frame>_leftImg8bit.png
  leftImg8bit/val/<city>/...
  gtFine/train/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png
  gtFine/val/<city>/...""",
}


@dataclass
class SplitReport:
    """What the check found in one split; ``pixel_counts`` is (NUM_CLASSES,) int64 per trainId."""

    name: str
    num_images: int = 0
    size_mismatches: list[str] = field(default_factory=list)
    blank_images: list[str] = field(default_factory=list)
    pixel_counts: np.ndarray = field(default_factory=lambda: np.zeros(NUM_CLASSES, np.int64))
    ignored_pixels: int = 0


@dataclass
class DataReport:
    splits: dict[str, SplitReport]
    fingerprint: str  # sha256 over every checked file's relative path and content

    def summary(self) -> dict:
        """Counts per split (a JSON that ``dvc metrics show`` reads)."""
        return {
            "images": {name: split.num_images for name, split in self.splits.items()},
            "size_mismatches": {name: len(split.size_mismatches) for name, split in self.splits.items()},
            "blank_images": {name: len(split.blank_images) for name, split in self.splits.items()},
        }

    def findings(self) -> dict:
        """The files behind the counts (size-mismatched pairs, blank images), per split."""
        return {
            name: {"size_mismatches": split.size_mismatches, "blank_images": split.blank_images}
            for name, split in self.splits.items()
        }

    def class_frequencies(self) -> list[dict]:
        """One record per class: its share of the labelled (non-ignore) pixels of the source and
        target-train labels (``dvc plots`` bar chart rows)."""
        shares = {}
        for name in (SOURCE, TARGET_TRAIN):
            counts = self.splits[name].pixel_counts
            shares[name] = counts / max(int(counts.sum()), 1)
        return [
            {"class": class_name, SOURCE: round(float(shares[SOURCE][i]), 6),
             TARGET_TRAIN: round(float(shares[TARGET_TRAIN][i]), 6)}
            for i, class_name in enumerate(CLASS_NAMES)
        ]


# ---- reading one pair ----------------------------------------------------------------------------

def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise UserError(f"{path}: cannot read the file ({error})") from error


@dataclass(frozen=True)
class _Pair:
    split: str
    name: str
    image: Path
    label: Path
    read_label: Callable[[Path, bytes], np.ndarray]
    relative_to: Path


@dataclass
class _PairResult:
    digest: bytes
    size_mismatch: bool
    blank: bool
    histogram: np.ndarray
    error: str | None = None


def _check_pair(pair: _Pair) -> _PairResult:
    try:
        image_bytes, label_bytes = _read_bytes(pair.image), _read_bytes(pair.label)
        image = open_image(pair.image, image_bytes)
        train_ids = pair.read_label(pair.label, label_bytes)
    except UserError as error:
        return _PairResult(b"", False, False, np.zeros(0, np.int64), error=str(error))
    extrema = image.getextrema()  # per band (min, max); a blank frame has min == max everywhere
    bands = extrema if isinstance(extrema[0], tuple) else (extrema,)
    blank = all(low == high for low, high in bands)
    label_hw = train_ids.shape[:2]
    digest = hashlib.sha256()
    for path, data in ((pair.image, image_bytes), (pair.label, label_bytes)):
        digest.update(path.relative_to(pair.relative_to).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(data).digest())
    return _PairResult(
        digest=digest.digest(),
        size_mismatch=(image.height, image.width) != label_hw,
        blank=blank,
        histogram=np.bincount(train_ids.ravel(), minlength=IGNORE_INDEX + 1),
    )


# ---- layout ----------------------------------------------------------------------------------------

def _require_folders(root: Path, folders: list[str], tree_key: str, params_key: str) -> None:
    missing = [folder for folder in folders if not (Path(root) / folder).is_dir()]
    if missing:
        shown = ", ".join(str(Path(root) / folder) for folder in missing)
        raise UserError(
            f"{shown}: folder not found. '{params_key}' is '{root}'; it must hold:\n"
            f"{EXPECTED_TREES[tree_key]}\n(point {params_key} there, or link the dataset: "
            f"ln -s /path/to/dataset {root})"
        )


def _source_pairs(kind: str, root: Path) -> list[_Pair]:
    root = Path(root)
    if kind == "gta5":
        _require_folders(root, [GTA5_IMAGE_DIR, GTA5_LABEL_DIR], "gta5", "data.source_root")
        names, image_dir, label_dir, reader = list_gta5(root), GTA5_IMAGE_DIR, GTA5_LABEL_DIR, read_cityscapes_train_ids
    else:
        _require_folders(root, [SYNTHIA_IMAGE_DIR, SYNTHIA_LABEL_DIR], "synthia", "data.source_root")
        names, image_dir, label_dir = list_synthia(root), SYNTHIA_IMAGE_DIR, SYNTHIA_LABEL_DIR
        reader = read_synthia_train_ids
    return [_Pair(SOURCE, name, root / image_dir / name, root / label_dir / name, reader, root) for name in names]


def _target_pairs(root: Path, split: str, names: list[str] | None = None) -> list[_Pair]:
    root = Path(root)
    cityscapes_split = "train" if split == TARGET_TRAIN else "val"
    names = list_cityscapes(root, cityscapes_split) if names is None else names
    return [
        _Pair(split, name, root / CITYSCAPES_IMAGE_DIR / cityscapes_split / name,
              label_path_for(root, cityscapes_split, name), read_cityscapes_train_ids, root)
        for name in names
    ]


def _require_labels(pairs: list[_Pair]) -> None:
    missing = [pair for pair in pairs if not pair.label.is_file()]
    if missing:
        shown = "\n".join(f"  {pair.label}  (image {pair.image})" for pair in missing[:SHOWN_FILES])
        more = f"\n  ... and {len(missing) - SHOWN_FILES} more" if len(missing) > SHOWN_FILES else ""
        raise UserError(f"{len(missing)} image(s) have no label file:\n{shown}{more}\n"
                        "re-extract the labels, or remove those images")


# ---- the check -------------------------------------------------------------------------------------

def list_pairs(source_kind: str, source_root: Path, target_root: Path) -> list[_Pair]:
    """Every (image, label) pair of source, target train and target val, after the layout checks."""
    target_root = Path(target_root)
    _require_folders(
        target_root,
        [f"{CITYSCAPES_IMAGE_DIR}/train", f"{CITYSCAPES_IMAGE_DIR}/val",
         f"{CITYSCAPES_LABEL_DIR}/train", f"{CITYSCAPES_LABEL_DIR}/val"],
        "cityscapes", "data.target_root",
    )
    pairs = _source_pairs(source_kind, source_root)
    pairs += _target_pairs(target_root, TARGET_TRAIN) + _target_pairs(target_root, TARGET_VAL)
    _require_labels(pairs)
    return pairs


def check_datasets(source_kind: str, source_root: Path, target_root: Path, progress: bool = True,
                   threads: int = CHECK_THREADS) -> DataReport:
    """Check and count every file of the source (``gta5`` | ``synthia``) and target (Cityscapes layout)
    roots; raises UserError naming the files at the first kind of problem (see the module docstring)."""
    pairs = list_pairs(source_kind, source_root, target_root)
    splits = {name: SplitReport(name) for name in (SOURCE, TARGET_TRAIN, TARGET_VAL)}
    fingerprint = hashlib.sha256()
    errors: list[str] = []
    pool = ThreadPoolExecutor(max_workers=threads)
    try:
        results = pool.map(_check_pair, pairs)
        for pair, result in tqdm(zip(pairs, results), total=len(pairs), desc="check data", disable=not progress,
                                 mininterval=2.0):
            if result.error is not None:
                errors.append(result.error)
                if len(errors) >= MAX_REPORTED_ERRORS:
                    break
                continue
            split = splits[pair.split]
            split.num_images += 1
            if result.size_mismatch:
                split.size_mismatches.append(pair.name)
            if result.blank:
                split.blank_images.append(pair.name)
            split.pixel_counts += result.histogram[:NUM_CLASSES]
            split.ignored_pixels += int(result.histogram[IGNORE_INDEX])
            fingerprint.update(result.digest)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # stop early: do not decode the rest
    if errors:
        stopped = " (stopped early)" if len(errors) >= MAX_REPORTED_ERRORS else ""
        raise UserError(f"{len(errors)} broken file(s){stopped}:\n" + "\n".join(f"  {e}" for e in errors))
    return DataReport(splits=splits, fingerprint=fingerprint.hexdigest())


SUMMARY_FILE = "summary.json"
FINDINGS_FILE = "findings.json"
CLASS_FREQUENCIES_FILE = "class_frequencies.json"
CONTENT_FINGERPRINT_FILE = "content_fingerprint.txt"


def write_reports(report: DataReport, reports_dir: Path, lists_dir: Path) -> None:
    """``reports_dir``/{summary, findings, class_frequencies}.json and the content fingerprint in
    ``lists_dir`` (every training stage depends on the lists, so a content change re-runs them)."""
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    for file_name, content in (
        (SUMMARY_FILE, report.summary()),
        (FINDINGS_FILE, report.findings()),
        (CLASS_FREQUENCIES_FILE, report.class_frequencies()),
    ):
        atomic.write_json(reports_dir / file_name, content)  # each file whole or absent after a kill
    atomic.write_text(Path(lists_dir) / CONTENT_FINGERPRINT_FILE, report.fingerprint + "\n")


def describe(report: DataReport) -> str:
    """A few lines for the stage log: counts, mismatches, blank images."""
    lines = []
    for split in report.splits.values():
        line = f"{split.name}: {split.num_images} images"
        if split.size_mismatches:
            line += (f", {len(split.size_mismatches)} image/label size mismatches (labels resized NEAREST), "
                     f"e.g. {', '.join(split.size_mismatches[:3])}")
        if split.blank_images:
            line += f", {len(split.blank_images)} blank images ({', '.join(split.blank_images[:SHOWN_FILES])})"
        lines.append(line)
    return "\n".join(lines)
