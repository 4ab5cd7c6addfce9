"""Seconds per adaptation iteration and peak memory of a preset's full setting, on random tensors.

Builds the preset's network (DeepLab-v2 ResNet-101 for the paper presets, random weights: speed and
memory do not depend on them) and the adapt stage's alignment terms, then runs the real training step
(source segmentation loss, global + local adversarial terms on a target batch, discriminator step,
optimiser steps) at the preset's source and target sizes:

    python benchmarks/paper_speed.py --preset paper_gta5 --iters 2 --warmup 1

Prints seconds per iteration (wall and CPU time), peak process RSS and, on CUDA, the peak allocated
GPU memory. ``--size-scale 0.5`` halves both sides of both sizes (when the full size does not fit).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from globallocal import config
from globallocal.config import presets
from globallocal.data.labels import NUM_CLASSES
from globallocal.models import build_model
from globallocal.runtime import peak_rss_mib, resolve_device
from globallocal.training.loop import build_train_state, train_step

BYTES_PER_MIB = 2**20
REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper_gta5", help="a presets/ name or YAML path")
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml", help="the base the preset is applied to")
    parser.add_argument("--iters", type=int, default=2, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    parser.add_argument("--size-scale", type=float, default=1.0, help="scale both input sizes (1 = the preset's)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    return parser.parse_args(argv)


def preset_params(preset: str, params_path: Path) -> config.Params:
    """params.yaml with the preset's values on top (nothing is written)."""
    params = config.load_params(params_path)
    for key, value in presets.preset_settings(preset, presets_dir=REPO / "presets").items():
        node = params
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    return config.parse(params)


def scaled(size_wh: tuple[int, int], scale: float) -> tuple[int, int]:
    return max(1, round(size_wh[0] * scale)), max(1, round(size_wh[1] * scale))


def random_batch(size_wh: tuple[int, int], batch: int, generator: torch.Generator, labelled: bool) -> dict:
    width, height = size_wh
    item = {"image": torch.randn(batch, 3, height, width, generator=generator)}
    if labelled:
        item["label"] = torch.randint(0, NUM_CLASSES, (batch, height, width), generator=generator)
    return item



def measure(args: argparse.Namespace) -> dict:
    """Run warm-up then timed adaptation iterations; returns the figures that main prints."""
    torch.set_num_threads(args.threads)
    params = preset_params(args.preset, args.params)
    data = params.data
    # Random weights: the speed and memory of a step do not depend on their values.
    spec = dict(params.model.spec(NUM_CLASSES), backbone_weights=None)
    device = resolve_device(args.device)
    model = build_model(**spec).to(device)
    train_config = params.train_config("adapt", aligned=True)
    state = build_train_state(model, train_config, NUM_CLASSES)
    model.train()
    state.aligners.train()
    batch = params.train.batch_size
    source_size, target_size = scaled(data.source_size, args.size_scale), scaled(data.target_size, args.size_scale)
    generator = torch.Generator().manual_seed(0)
    source = random_batch(source_size, batch, generator, labelled=True)
    target = random_batch(target_size, batch, generator, labelled=False)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step() -> None:
        train_step(state, train_config, source, target, device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def logged_step(label: str) -> None:
        began_s = time.perf_counter()
        step()
        # One line per iteration: a paper-size run on a CPU is slow, so show progress as it goes.
        print(f"{label}: {time.perf_counter() - began_s:.1f} s, peak RSS so far {peak_rss_mib():.0f} MiB", flush=True)

    for index in range(args.warmup):
        logged_step(f"warm-up iteration {index + 1}")
    start_s, start_cpu_s = time.perf_counter(), time.process_time()
    for index in range(args.iters):
        logged_step(f"timed iteration {index + 1}")
    figures = {
        "arch": spec["arch"], "source_size": source_size, "target_size": target_size, "batch": batch,
        "device": str(device), "threads": args.threads,
        "seconds_per_iter": (time.perf_counter() - start_s) / args.iters,
        # On a shared machine wall time is inflated by other jobs; CPU time much less.
        "cpu_seconds_per_iter": (time.process_time() - start_cpu_s) / args.iters,
        "peak_rss_mib": peak_rss_mib(),
    }
    if device.type == "cuda":
        figures["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated(device) / BYTES_PER_MIB
    return figures


def report(figures: dict, iters: int) -> str:
    (sw, sh), (tw, th) = figures["source_size"], figures["target_size"]
    line = (
        f"{figures['arch']} source {sw}x{sh} + target {tw}x{th}, batch {figures['batch']} + "
        f"{figures['batch']}, {figures['device']} ({figures['threads']} threads): "
        f"{figures['seconds_per_iter']:.2f} s/iter (adaptation step, mean of {iters}; "
        f"{figures['cpu_seconds_per_iter']:.2f} CPU s/iter), peak RSS {figures['peak_rss_mib']:.0f} MiB"
    )
    if "cuda_max_allocated_mib" in figures:
        line += f", CUDA max allocated {figures['cuda_max_allocated_mib']:.0f} MiB"
    return line


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(report(measure(args), args.iters))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
