"""Snapshots of a training stage, so that a killed run resumes exactly where it was.

Every ``every`` iterations a stage writes ``<folder>/iter_NNNNNNNN/`` holding ``state.pt`` (weights,
both optimisers, discriminators, the source's BatchNorm statistics under ``bn_stats: domain_specific``,
iteration, every RNG state, the data streams' positions, the partial
logging sums and the fingerprint) and copies of its attachments (the dvclive log: DVC deletes a stage's
declared outputs before re-running it, so the log is restored from the snapshot). The folder is built
as ``.tmp`` and renamed, so a kill during a write leaves the earlier snapshots whole; the newest
``keep`` are kept. Re-running the stage resumes from the newest readable snapshot (a damaged newest
one falls back to the one before) and prints one line saying so; the weights it ends with are
bit-identical on the CPU to an uninterrupted run's.

The fingerprint is what decides the numerics: the stage's training configuration, model spec, data
configuration and seed, a digest of the file lists and of the initial checkpoint, and a digest of the
library code. A snapshot whose fingerprint differs is never resumed from: the stage starts over and
names the entries that changed.

Where: ``snapshots/<run>/``, git-ignored and deliberately NOT a DVC output. Declaring it
``persist: true`` would disable DVC's run cache for the stage, and experiment sweeps rely on the run
cache restoring ``pretrain`` across experiments. DVC neither tracks nor deletes an undeclared folder,
so the snapshots survive a killed ``dvc repro``; the stage removes them once its final checkpoint is
written, so the folder only ever holds an unfinished run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from globallocal import atomic
from globallocal.data.order import DataStream

if TYPE_CHECKING:
    from globallocal.training.state import TrainState

SNAPSHOT_ROOT = Path("snapshots")
STATE_FILE = "state.pt"
PREFIX = "iter_"
#: Zero-padded iteration in folder names, so that names sort by iteration.
ITERATION_DIGITS = 8
#: How many changed fingerprint entries a start-over message names.
SHOWN_CHANGES = 4


@dataclasses.dataclass(frozen=True)
class SnapshotConfig:
    """``every``: iterations between snapshots (0 = none); ``keep``: how many of the newest to keep."""

    every: int
    keep: int


# ---- fingerprint ---------------------------------------------------------------------------------

def _flatten(value, prefix: str, out: dict[str, str]) -> None:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    else:
        out[prefix] = repr(value)


def fingerprint(**parts) -> dict[str, str]:
    """Flatten nested dicts and dataclasses to ``{"optim.lr": "0.0025", ...}`` (reprs, comparable as text)."""
    out: dict[str, str] = {}
    _flatten(parts, "", out)
    return out


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (short hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def code_digest(package_dir: Path = Path(__file__).parent) -> str:
    """SHA-256 over the library's Python sources (a few milliseconds), so edited code never resumes."""
    digest = hashlib.sha256()
    for path in sorted(Path(package_dir).rglob("*.py")):
        digest.update(path.relative_to(package_dir).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def changed_entries(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """The fingerprint keys whose values differ, e.g. ``["optim.lr: 0.005 -> 0.0025"]``."""
    keys = sorted(set(old) | set(new))
    return [f"{key}: {old.get(key, 'absent')} -> {new.get(key, 'absent')}"
            for key in keys if old.get(key) != new.get(key)]


# ---- random number generators -------------------------------------------------------------------

def rng_states() -> dict:
    """Python, numpy, torch (CPU and every CUDA device) RNG states, as weights-only-loadable types."""
    numpy_state = np.random.get_state(legacy=False)
    states = {
        "python": random.getstate(),
        "numpy": {
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    numpy_state = states["numpy"]
    np.random.set_state({
        "bit_generator": "MT19937",
        "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
        "has_gauss": numpy_state["has_gauss"],
        "gauss": numpy_state["gauss"],
    })
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


# ---- what a training snapshot holds -------------------------------------------------------------

def capture(state: TrainState, streams: dict[str, DataStream | None], extra: dict) -> dict:
    """Everything needed to continue ``state`` exactly: a plain dict (``torch.load(weights_only=True)``)."""
    payload = {
        "iteration": state.iteration,
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "rng": rng_states(),
        "streams": {name: stream.position() for name, stream in streams.items() if stream is not None},
        "extra": extra,
    }
    if state.aligners is not None:
        payload["discriminators"] = state.aligners.state_dict()
    if state.optimizer_d is not None:
        payload["optimizer_d"] = state.optimizer_d.state_dict()
    if state.domain_statistics is not None:
        payload["domain_statistics"] = state.domain_statistics.state_dict()
    return payload


def restore(payload: dict, state: TrainState, streams: dict[str, DataStream | None]) -> dict:
    """Put ``state`` and ``streams`` back where ``capture`` saw them; returns its ``extra``."""
    state.model.load_state_dict(payload["model"])
    state.optimizer.load_state_dict(payload["optimizer"])
    if state.aligners is not None:
        state.aligners.load_state_dict(payload["discriminators"])
    if state.optimizer_d is not None:
        state.optimizer_d.load_state_dict(payload["optimizer_d"])
    if state.domain_statistics is not None:
        state.domain_statistics.load_state_dict(payload["domain_statistics"])
    for name, stream in streams.items():
        if stream is not None:
            stream.restore(payload["streams"][name])
    set_rng_states(payload["rng"])
    state.iteration = payload["iteration"]
    return payload["extra"]


# ---- the folder ----------------------------------------------------------------------------------

class Snapshots:
    """The snapshots of one training run in ``folder``; ``attachments`` are folders copied with each one.

    ``fingerprint`` is stored in every snapshot and must match for a snapshot to be resumed from.
    """

    def __init__(self, folder: Path, fingerprint: dict[str, str], config: SnapshotConfig,
                 attachments: dict[str, Path] | None = None):
        self.folder = Path(folder)
        self.fingerprint = fingerprint
        self.config = config
        self.attachments = dict(attachments or {})

    def due(self, iteration: int) -> bool:
        return self.config.every > 0 and iteration % self.config.every == 0

    def folder_name(self, iteration: int) -> str:
        """The name of snapshot ``iteration``'s folder."""
        return f"{PREFIX}{iteration:0{ITERATION_DIGITS}d}"

    def existing(self) -> list[Path]:
        """Complete snapshot folders, newest first (``.tmp`` leftovers of a killed write are not snapshots)."""
        if not self.folder.is_dir():
            return []
        found = [p for p in self.folder.iterdir() if p.is_dir() and p.name.startswith(PREFIX)
                 and p.name[len(PREFIX):].isdigit()]
        return sorted(found, key=lambda p: p.name, reverse=True)

    def save(self, iteration: int, payload: dict) -> Path:
        """Write snapshot ``iteration`` whole (built beside, renamed), then drop all but the newest ``keep``."""
        path = self.folder / self.folder_name(iteration)
        with atomic.atomic_dir(path) as staging:
            torch.save({**payload, "fingerprint": self.fingerprint}, staging / STATE_FILE)
            for name, source in self.attachments.items():
                if Path(source).is_dir():
                    shutil.copytree(source, staging / name)
        for old in self.existing()[self.config.keep:]:
            shutil.rmtree(old, ignore_errors=True)
        return path

    def load(self, description: str) -> dict | None:
        """The newest usable snapshot's payload (attachments restored), or None to start from scratch.

        Prints one line: where it resumes from, or why it starts over. A snapshot that cannot be read
        is reported and the one before it tried; one made under another fingerprint is never used.
        """
        damaged = []
        for path in self.existing():
            try:
                payload = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
                stored = payload["fingerprint"]
                payload["iteration"]
            except Exception as error:  # torch raises several types for a damaged or partial file
                print(f"{description}: snapshot {path} is damaged ({type(error).__name__}); trying the one before it")
                damaged.append(path)
                continue
            for path_damaged in damaged:  # newer than the one resumed from, and unusable
                shutil.rmtree(path_damaged, ignore_errors=True)
            changes = changed_entries(stored, self.fingerprint)
            if changes:
                shown = "; ".join(changes[:SHOWN_CHANGES]) + ("; ..." if len(changes) > SHOWN_CHANGES else "")
                print(f"{description}: not resuming from {path}, it was made under other settings ({shown}); "
                      "starting over")
                self.clear()
                return None
            for name, target in self.attachments.items():
                saved = path / name
                if saved.is_dir():
                    shutil.rmtree(target, ignore_errors=True)
                    shutil.copytree(saved, target)
            print(f"{description}: resuming from snapshot {path} (iteration {payload['iteration']})")
            return payload
        if damaged:
            print(f"{description}: no readable snapshot left; starting over")
            self.clear()
        return None

    def clear(self) -> None:
        """Remove every snapshot of this run (after its final checkpoint is written, or on a start-over)."""
        shutil.rmtree(self.folder, ignore_errors=True)

