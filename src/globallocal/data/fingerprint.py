"""A cheap fingerprint of the dataset files on disk: relative path, size and modification time.

DVC cannot depend on a real dataset folder directly (with the embedded default the roots are
``prepare``'s own outputs), so the ``fingerprint`` stage, always run, writes this fingerprint and
``prepare`` depends on it: a changed, added, removed or replaced file re-runs ``prepare``, whose
full check then writes a *content* fingerprint that the training stages depend on. Stat calls only:
no file is read, so it stays cheap even for GTA5 + Cityscapes (about 28k files).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from globallocal.data.file_lists import (
    CITYSCAPES_IMAGE_DIR,
    CITYSCAPES_LABEL_DIR,
    GTA5_IMAGE_DIR,
    GTA5_LABEL_DIR,
    SYNTHIA_IMAGE_DIR,
    SYNTHIA_LABEL_DIR,
)

SOURCE_FOLDERS = {"gta5": (GTA5_IMAGE_DIR, GTA5_LABEL_DIR), "synthia": (SYNTHIA_IMAGE_DIR, SYNTHIA_LABEL_DIR)}
TARGET_FOLDERS = tuple(f"{top}/{split}" for top in (CITYSCAPES_IMAGE_DIR, CITYSCAPES_LABEL_DIR)
                       for split in ("train", "val"))


def _walk(folder: Path):
    """(relative path, size, mtime_ns) of every file below ``folder`` (symlinks followed), sorted."""
    entries = []
    for directory, _, files in os.walk(folder, followlinks=True):
        for name in files:
            path = Path(directory) / name
            stat = path.stat()
            entries.append((path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns))
    return sorted(entries)


def stat_fingerprint(source_kind: str, source_root: Path, target_root: Path) -> dict:
    """{"files": N, "sha256": ...} over the dataset folders of both roots; a missing folder counts
    as empty (``prepare`` reports it with the expected layout)."""
    digest = hashlib.sha256()
    count = 0
    folders = [(Path(source_root), folder) for folder in SOURCE_FOLDERS[source_kind]]
    folders += [(Path(target_root), folder) for folder in TARGET_FOLDERS]
    for root, folder in folders:
        digest.update(f"{folder}\0".encode())
        for relative, size, mtime_ns in _walk(root / folder):
            digest.update(f"{relative}\0{size}\0{mtime_ns}\n".encode())
            count += 1
    return {"files": count, "sha256": digest.hexdigest()}
