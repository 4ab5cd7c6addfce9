"""Print what snapshotting costs a default `dvc repro`: seconds and MB per snapshot, snapshots per run.

    .venv/bin/python benchmarks/snapshot_overhead.py [--repeats 5] [--params params.yaml]

Builds each training stage's state as params.yaml says (the default MobileNetV3, plus the adapt
stage's discriminators and their Adam state), writes ``--repeats`` snapshots of it the way the stage
does (state file + a copy of a dvclive log, built beside and renamed, fsync'ed) into a temporary
folder, and prints the mean time per snapshot. The count per stage is iterations // snapshot_every.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from globallocal import config
from globallocal.data.labels import NUM_CLASSES
from globallocal.data.loading import train_loader
from globallocal.data.order import DataStream
from globallocal.models import build_model
from globallocal.training.loop import build_train_state
from globallocal.training.snapshots import SnapshotConfig, Snapshots, capture, fingerprint

#: Training stages, the params section holding their schedule, and whether they align.
STAGES = (("pretrain", "pretrain", False), ("source_only", "adapt", False), ("adapted", "adapt", True),
          ("oracle", "oracle", False))


def seconds_per_snapshot(params: config.Params, section: str, aligned: bool, repeats: int) -> tuple[float, float]:
    """(mean seconds per snapshot, MB per snapshot) for one stage's state."""
    torch.manual_seed(0)
    model = build_model(**params.model.spec(NUM_CLASSES))
    train_config = params.train_config(section, aligned=aligned)
    state = build_train_state(model, train_config, NUM_CLASSES)
    # Optimiser states exist after the first step: fill them as a step would (momentum, Adam moments).
    for optimizer in (state.optimizer, state.optimizer_d):
        if optimizer is None:
            continue
        for group in optimizer.param_groups:
            for param in group["params"]:
                param.grad = torch.zeros_like(param)
        optimizer.step()
    stream = DataStream(train_loader(list(range(8)), 2, 0, 0))
    next(stream)
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "live"
        (log / "plots/metrics").mkdir(parents=True)
        (log / "plots/metrics/loss.tsv").write_text("step\tloss\n" + "".join(f"{i}\t0.5\n" for i in range(300)))
        snapshots = Snapshots(Path(folder) / "snapshots", fingerprint(train=train_config), SnapshotConfig(1, 2),
                              attachments={"live": log})
        started_s = time.perf_counter()
        for iteration in range(1, repeats + 1):
            state.iteration = iteration
            path = snapshots.save(iteration, capture(state, {"source": stream, "target": None}, {}))
        elapsed_s = (time.perf_counter() - started_s) / repeats
        size_mb = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6
    return elapsed_s, size_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    params = config.load_validated_params(args.params)
    every = params.train.snapshot_every
    total_s, total_count = 0.0, 0
    print(f"snapshot_every: {every}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    for stage, section, aligned in STAGES:
        seconds, size_mb = seconds_per_snapshot(params, section, aligned, args.repeats)
        count = getattr(params, section).iterations // every if every else 0
        total_s += count * seconds
        total_count += count
        print(f"{stage:12s} {seconds:6.3f} s per snapshot, {size_mb:6.1f} MB, "
              f"{count:3d} snapshots -> {count * seconds:6.2f} s")
    print(f"default run: {total_count} snapshots, {total_s:.1f} s of snapshot writing in all")


if __name__ == "__main__":
    sys.exit(main())
