"""Generating examples and writing the benchmark in the GTA5 and Cityscapes layouts on disk."""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
from cityscapesscripts.helpers.labels import labels as _CITYSCAPES_LABELS
from PIL import Image

from globallocal import atomic
from globallocal.data.labels import CLASS_NAMES, NUM_CLASSES, label_id_to_train_id_lut
from globallocal.errors import UserError

from globallocal.data.synthetic.settings import (
    ANNOTATED_FRAME,
    MARKER_FILE,
    SOURCE,
    SOURCE_DIR,
    SPLITS,
    SyntheticConfig,
    TARGET_DIR,
    TARGET_TRAIN,
    TARGET_VAL,
    TRAIN_CITIES,
    VAL_CITIES,
    _SPLIT_STREAM,
)
from globallocal.data.synthetic.codes import canvas_to_label_id_lut
from globallocal.data.synthetic.styles import SOURCE_STYLE, TARGET_STYLE, _STYLE_OF_SPLIT
from globallocal.data.synthetic.scene import draw_scene
from globallocal.data.synthetic.rendering import Palette, make_palette, render
from globallocal.data.synthetic.shifts import TargetShift, shift_rng

# --------------------------------------------------------------------------------------------
# Generation and writing
# --------------------------------------------------------------------------------------------


def generate_example(config: SyntheticConfig, split: str, index: int,
                     palette: Palette | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One image of a split, in memory: (H, W, 3) uint8 RGB and (H, W) uint8 Cityscapes labelIds.

    The same (config.seed, split, index) always gives the same arrays.
    """
    style = _STYLE_OF_SPLIT[split]
    width, height = config.source_size if split == SOURCE else config.target_size
    rng = np.random.default_rng([config.seed, _SPLIT_STREAM[split], index])
    # The shift acts on the target domain only (train, dev and val alike).
    shift = TargetShift() if split == SOURCE else TargetShift(config.shift, config.shift_severity)
    camera_height_m, focal_factor = shift.camera()
    scene = draw_scene(rng, width, height, shift.objects(style.objects), with_border=split != SOURCE,
                       camera_height_m=camera_height_m, focal_factor=focal_factor)
    rgb = render(scene, style, palette or make_palette(config.seed, style), rng,
                 shift, shift_rng(config.seed, _SPLIT_STREAM[split], index))
    return rgb, canvas_to_label_id_lut()[scene.canvas]


def cityscapes_palette() -> list[int]:
    """768 ints: the Cityscapes colour of each labelId, as GTA5's palette label PNGs carry."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for label in _CITYSCAPES_LABELS:
        if 0 <= label.id < 256:
            palette[label.id] = label.color
    return palette.ravel().tolist()


def gta5_name(index: int) -> str:
    """GTA5 file name of the index-th (0-based) image: 5 digits, 1-based."""
    return f"{index + 1:05d}.png"


def cityscapes_stem(split: str, index: int) -> tuple[str, str]:
    """(city, '<city>_<seq:06d>_<frame:06d>') of the index-th image of a target split."""
    cities = TRAIN_CITIES if split == TARGET_TRAIN else VAL_CITIES
    city = cities[index % len(cities)]
    return city, f"{city}_{index // len(cities):06d}_{ANNOTATED_FRAME:06d}"


#: zlib level for the RGB PNGs: noisy images barely compress, and level 1 writes them fastest.
RGB_PNG_COMPRESS_LEVEL = 1


def _save_rgb(path: Path, rgb: np.ndarray) -> None:
    Image.fromarray(rgb).save(path, compress_level=RGB_PNG_COMPRESS_LEVEL)


def _save_palette_label(path: Path, label_ids: np.ndarray, palette: list[int]) -> None:
    image = Image.frombytes("P", (label_ids.shape[1], label_ids.shape[0]), label_ids.tobytes())
    image.putpalette(palette)
    image.save(path)


def _save_gray_label(path: Path, label_ids: np.ndarray) -> None:
    Image.frombytes("L", (label_ids.shape[1], label_ids.shape[0]), label_ids.tobytes()).save(path)


def _clear_previous(out_root: Path) -> None:
    """Remove a benchmark we generated before; refuse to touch folders we did not write."""
    _check_ours(out_root)
    for folder in (out_root / SOURCE_DIR, out_root / TARGET_DIR):
        shutil.rmtree(folder, ignore_errors=True)


def _check_ours(out_root: Path) -> None:
    """Raise UserError if out_root holds dataset folders without the generator's marker.

    Only looks: removing is the caller's choice (write_benchmark never removes the live folders; it
    swaps a complete new benchmark in beside them).
    """
    previous = [out_root / SOURCE_DIR, out_root / TARGET_DIR]
    if not any(folder.exists() for folder in previous):
        return
    if not (out_root / MARKER_FILE).is_file():
        raise UserError(
            f"{out_root} already holds a {SOURCE_DIR}/ or {TARGET_DIR}/ folder that the synthetic "
            f"generator did not write (no {MARKER_FILE}); point the output at an empty folder or move "
            "those folders away"
        )


#: Images are made in one thread per available core (at least two): numpy, OpenCV and PNG encoding
#: release the GIL, so the cores work side by side. Each image depends on (seed, split, index) only and
#: the results are gathered in job order, so the files and the summary do not depend on the count.
GENERATOR_THREADS = max(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2)


def generate_benchmark(out_root: Path, config: SyntheticConfig) -> dict:
    """Write the benchmark under out_root in the GTA5 and Cityscapes layouts; return a summary.

    Writes ``out_root/gta5/{images,labels}/NNNNN.png``,
    ``out_root/cityscapes/{leftImg8bit,gtFine}/{train,val}/<city>/...`` and ``out_root/MARKER_FILE``
    (config and summary). The summary holds the image counts and, per domain, each class's share of
    the labelled pixels and the number of images it appears in.
    """
    out_root = Path(out_root)
    _clear_previous(out_root)
    label_palette = cityscapes_palette()
    palettes = {style.name: make_palette(config.seed, style) for style in (SOURCE_STYLE, TARGET_STYLE)}
    counts = {SOURCE: config.num_source, TARGET_TRAIN: config.num_target_train,
              TARGET_VAL: config.num_target_val}
    jobs = [(split, index) for split in SPLITS for index in range(counts[split])]

    def make_and_write(job: tuple[str, int]) -> np.ndarray:
        split, index = job
        palette = palettes[_STYLE_OF_SPLIT[split].name]
        rgb, label_ids = generate_example(config, split, index, palette)
        _write_example(out_root, split, index, rgb, label_ids, label_palette)
        return _train_id_histogram(label_ids)

    pixel_counts = {name: np.zeros(NUM_CLASSES, np.int64) for name in palettes}
    image_counts = {name: np.zeros(NUM_CLASSES, np.int64) for name in palettes}
    with ThreadPoolExecutor(max_workers=GENERATOR_THREADS) as pool:
        for (split, _), histogram in zip(jobs, pool.map(make_and_write, jobs)):
            domain = _STYLE_OF_SPLIT[split].name
            pixel_counts[domain] += histogram
            image_counts[domain] += histogram > 0
    summary = {
        "num_source": config.num_source,
        "num_target_train": config.num_target_train,
        "num_target_val": config.num_target_val,
        "class_frequencies": {domain: _fractions(totals) for domain, totals in pixel_counts.items()},
        "class_image_counts": {domain: dict(zip(CLASS_NAMES, map(int, per_class)))
                               for domain, per_class in image_counts.items()},
    }
    marker = {"config": _config_record(config), "summary": summary}
    atomic.write_json(out_root / MARKER_FILE, marker)
    return summary


def write_source_examples(out_root: Path, config: SyntheticConfig, indices: range) -> list[str]:
    """Write source images of the given indices in the GTA5 layout under ``out_root/gta5``; their names.

    Indices at or past ``config.num_source`` are images the benchmark never wrote: a held-out source set
    from the same distribution (``benchmarks/source_curve.py`` scores source-only training on it).
    """
    label_palette = cityscapes_palette()
    palette = make_palette(config.seed, SOURCE_STYLE)
    for index in indices:
        rgb, label_ids = generate_example(config, SOURCE, index, palette)
        _write_example(Path(out_root), SOURCE, index, rgb, label_ids, label_palette)
    return [gta5_name(index) for index in indices]


def _config_record(config: SyntheticConfig) -> dict:
    """The config as the marker records it; without the shift keys when there is no shift, so that the
    unshifted benchmark's marker is byte-identical to the one written before shifts existed."""
    record = asdict(config)
    if config.shift == "none":
        del record["shift"], record["shift_severity"]
    return record


#: What a folder may hold for write_benchmark to replace it whole: what generate_benchmark writes, or
#: the note prepare leaves when it does not generate.
_REPLACEABLE = {SOURCE_DIR, TARGET_DIR, MARKER_FILE, "NOT_GENERATED.txt"}


def write_benchmark(out_root: Path, config: SyntheticConfig) -> dict:
    """generate_benchmark, whole or absent: built in a folder beside ``out_root``, then swapped in.

    The previous benchmark stays untouched until the new one is whole (atomic.atomic_dir: built in
    ``<out_root>.tmp``, then the old folder renamed aside, the new one renamed in, the old removed), so
    a kill at any moment leaves the previous complete benchmark; a kill between the two renames is
    undone by the next run, which renames the previous one back before anything else. A staging
    folder left by a killed run is removed when the next run starts. Refuses to replace a folder
    holding anything the generator does not write (or a dataset folder without its marker).
    """
    out_root = Path(out_root)
    atomic.recover_interrupted_swap(out_root)
    if out_root.is_dir():
        foreign = sorted(entry.name for entry in out_root.iterdir() if entry.name not in _REPLACEABLE)
        if foreign:
            raise UserError(
                f"{out_root} holds {', '.join(foreign[:3])}, which the synthetic generator did not write; "
                "point prepare.out_dir at an empty folder or move those files away"
            )
        _check_ours(out_root)
    with atomic.atomic_dir(out_root) as staging:
        return generate_benchmark(staging, config)


def _train_id_histogram(label_ids: np.ndarray) -> np.ndarray:
    """(19,) pixel count per trainId of an (H, W) labelId map, mapped as the real loaders map it."""
    train_ids = label_id_to_train_id_lut()[label_ids]
    return np.bincount(train_ids.ravel(), minlength=256)[:NUM_CLASSES]


def _fractions(pixel_totals: np.ndarray) -> dict[str, float]:
    total = max(int(pixel_totals.sum()), 1)
    return {name: round(int(count) / total, 6) for name, count in zip(CLASS_NAMES, pixel_totals)}


def _write_example(out_root: Path, split: str, index: int, rgb: np.ndarray, label_ids: np.ndarray,
                   label_palette: list[int]) -> None:
    if split == SOURCE:
        image_path = out_root / SOURCE_DIR / "images" / gta5_name(index)
        label_path = out_root / SOURCE_DIR / "labels" / gta5_name(index)
    else:
        subset = "train" if split == TARGET_TRAIN else "val"
        city, stem = cityscapes_stem(split, index)
        image_path = out_root / TARGET_DIR / "leftImg8bit" / subset / city / f"{stem}_leftImg8bit.png"
        label_path = out_root / TARGET_DIR / "gtFine" / subset / city / f"{stem}_gtFine_labelIds.png"
    image_path.parent.mkdir(parents=True, exist_ok=True)
    label_path.parent.mkdir(parents=True, exist_ok=True)
    _save_rgb(image_path, rgb)
    if split == SOURCE:
        _save_palette_label(label_path, label_ids, label_palette)
    else:
        _save_gray_label(label_path, label_ids)
