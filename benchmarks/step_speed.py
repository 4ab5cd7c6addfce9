"""Seconds per adaptation iteration: the configured step against an fp32 reference, side by side.

    .venv/bin/python benchmarks/step_speed.py                       # embedded default, writes reports/bench.json
    .venv/bin/python benchmarks/step_speed.py --setting paper      # paper model (CPU: reduced size)

Both steps train the same model (built from params.yaml, or the paper's DeepLab-v2 ResNet-101) on the
same random batches:

* **reference**: the loop as ADVENT structures it, fp32, NCHW, ADVENT's discriminators (D_g width 64,
  on the whole input-size map): G forward + segmentation backward on source, target forward, every
  head's adversarial term through its frozen D (and the local term), backward, then each D on detached
  source and target outputs, each term recomputing softmax / self-information from the logits it is
  given. Its parts are timed one by one (the breakdown).
* **configured**: `training.train_step` with the params' TrainConfig (precision, channels_last,
  global_d_width, global_d_pool, shared target softmax, ...).

Repeats alternate reference and configured (ABAB...), so a machine that gets busier or quieter slows
both alike; the ratio is the median over repeats, its spread the min..max of per-repeat ratios. Peak
memory: the process's max RSS (CPU) and max CUDA allocation per variant when on CUDA. Data loading is
timed separately on the real loaders when the embedded benchmark has been generated.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from globallocal import config
from globallocal.data.labels import IGNORE_INDEX, NUM_CLASSES
from globallocal.models import build_model
from globallocal.models.segmentation import upsample
from globallocal.runtime import peak_rss_mib
from globallocal.training.loop import (
    TrainConfig,
    build_train_state,
    set_requires_grad,
    train_step,
)

ADVENT_D_WIDTH = 64
#: The paper's sizes (width, height) and a CPU-sized stand-in keeping their aspect ratios.
PAPER_SIZES = {"source": (1280, 720), "target": (1024, 512)}
PAPER_CPU_SIZES = {"source": (320, 180), "target": (256, 128)}



class Timer:
    """Accumulates wall seconds per named part (synchronising CUDA so the time lands where it is spent)."""

    def __init__(self, device: torch.device):
        self.device, self.totals = device, {}

    def __call__(self, name: str):
        timer = self

        class _Part:
            def __enter__(self):
                timer.sync()
                self.start = time.perf_counter()

            def __exit__(self, *exc):
                timer.sync()
                timer.totals[name] = timer.totals.get(name, 0.0) + time.perf_counter() - self.start

        return _Part()

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def reference_step(state, cfg: TrainConfig, source: dict, target: dict, device, timer: Timer) -> None:
    """ADVENT's iteration, part by part, fp32 and NCHW, each term recomputing what it reads."""
    model, aligners = state.model, state.aligners
    state.optimizer.zero_grad(set_to_none=True)
    state.optimizer_d.zero_grad(set_to_none=True)
    set_requires_grad(aligners, False)
    images, labels = source["image"].to(device), source["label"].to(device)
    with timer("G: source forward"):
        aux, main = model(images)
        src = {"main": upsample(main, images.shape[-2:]), "aux": upsample(aux, images.shape[-2:])}
        loss_seg = F.cross_entropy(src["main"], labels, ignore_index=IGNORE_INDEX) + cfg.lambda_seg_aux * (
            F.cross_entropy(src["aux"], labels, ignore_index=IGNORE_INDEX))
    with timer("G: source backward"):
        loss_seg.backward()
    target_images = target["image"].to(device)
    with timer("G: target forward"):
        aux, main = model(target_images)
        tgt = {"main": upsample(main, target_images.shape[-2:]), "aux": upsample(aux, target_images.shape[-2:])}
    losses = []
    with timer("G: global terms (through D_g)"):
        for head, term in aligners.global_terms.items():
            losses.append(cfg.alignment.global_weight(head) * term.generator_loss(tgt[head]))
    with timer("G: local term (through D_l)"):
        for head, term in aligners.local_terms.items():
            losses.append(cfg.alignment.local_weight(head) * term.generator_loss(tgt[head]))
    with timer("G: adversarial backward"):
        sum(losses).backward()
    set_requires_grad(aligners, True)
    d_losses = {}
    with timer("D_g: forward (source + target)"):
        for head, term in aligners.global_terms.items():
            d_losses[f"global_{head}"] = term.discriminator_loss(src[head].detach(), tgt[head].detach())[0]
    with timer("D_l: forward (source + target)"):
        for head, term in aligners.local_terms.items():
            d_losses[f"local_{head}"] = term.discriminator_loss(src[head].detach(), labels, tgt[head].detach())[0]
    with timer("D: backward"):
        sum(d_losses.values()).backward()
    with timer("optimiser steps"):
        state.optimizer_d.step()
        state.optimizer.step()
    state.iteration += 1


def batches(batch: int, sizes: dict, generator: torch.Generator) -> tuple[dict, dict]:
    (sw, sh), (tw, th) = sizes["source"], sizes["target"]
    source = {"image": torch.randn(batch, 3, sh, sw, generator=generator),
              "label": torch.randint(0, NUM_CLASSES, (batch, sh, sw), generator=generator)}
    source["label"][:, : sh // 10] = IGNORE_INDEX  # some void, as in GTA5
    return source, {"image": torch.randn(batch, 3, th, tw, generator=generator)}


def data_loading_s(params: config.Params, iterations: int, device: torch.device) -> float | None:
    """Seconds per iteration to load one source and one target batch with the pipeline's loaders."""
    from globallocal.data.file_lists import read_list
    from globallocal.data.loading import resolve_num_workers, source_dataset, target_dataset, train_loader

    data = params.data
    try:
        src = source_dataset(data.source, data.source_root, read_list(data.lists_dir / "source_train.txt"),
                             data.source_size, "imagenet")
        tgt = target_dataset(data.target_root, "train", read_list(data.lists_dir / "target_train.txt"),
                             data.target_size, "imagenet", with_labels=False)
    except Exception:  # the benchmark has not been generated (dvc repro prepare first)
        return None
    batch = params.train.batch_size
    workers = resolve_num_workers(params.num_workers, device=device)
    loaders = [iter(train_loader(d, batch, 0, workers, pin_memory=device.type == "cuda")) for d in (src, tgt)]
    start = time.perf_counter()
    for _ in range(iterations):
        for loader in loaders:
            next(loader)
    return (time.perf_counter() - start) / iterations


def measure(setting: str, params: config.Params, device: torch.device, iterations: int, repeats: int) -> dict:
    configured = params.train_config("adapt", aligned=True)
    if setting == "default":
        spec = params.model.spec(NUM_CLASSES)
        data = params.data
        sizes = {"source": data.source_size, "target": data.target_size}
        batch = params.train.batch_size
    else:  # the paper preset's network and sizes (reduced on the CPU), batch 1 + 1, ADVENT's D width
        spec = {"arch": "deeplabv2_resnet101", "num_classes": NUM_CLASSES, "backbone_weights": None,
                "bn_protocol": "frozen", "output_stride": 8}
        sizes = PAPER_SIZES if device.type == "cuda" else PAPER_CPU_SIZES
        batch = 1
        paper_local = dataclasses.replace(configured.alignment.local, window=1)
        configured = dataclasses.replace(
            configured, alignment=dataclasses.replace(configured.alignment, global_d_width=ADVENT_D_WIDTH,
                                                      global_d_pool=1, local=paper_local))
    reference = dataclasses.replace(
        configured, precision="fp32", channels_last=False, log_grad_norms=False,
        alignment=dataclasses.replace(configured.alignment, global_d_width=ADVENT_D_WIDTH, global_d_pool=1),
    )
    generator = torch.Generator().manual_seed(0)
    data = [batches(batch, sizes, generator) for _ in range(2)]
    states = {}
    for name, cfg in (("reference", reference), ("configured", configured)):
        torch.manual_seed(0)
        states[name] = (build_train_state(build_model(**spec).to(device).train(), cfg, NUM_CLASSES), cfg)
    timer = Timer(device)
    seconds = {name: [] for name in states}
    peak_cuda = {}
    for repeat in range(repeats + 1):  # the first round warms up (allocator, oneDNN kernels) and is dropped
        for name, (state, cfg) in states.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            timer.totals = {} if name == "reference" else timer.totals
            timer.sync()
            start = time.perf_counter()
            for i in range(iterations):
                source, target = data[i % 2]
                if name == "reference":
                    reference_step(state, cfg, source, target, device, timer)
                else:
                    train_step(state, cfg, source, target, device)
            timer.sync()
            if repeat > 0:
                seconds[name].append((time.perf_counter() - start) / iterations)
                if name == "reference":
                    breakdown = {part: total / iterations for part, total in timer.totals.items()}
            if device.type == "cuda":
                peak_cuda[name] = torch.cuda.max_memory_allocated(device) / 2**20
    ratios = [r / c for r, c in zip(seconds["reference"], seconds["configured"])]
    result = {
        "device": str(device), "threads": torch.get_num_threads(), "model": spec["arch"],
        "source_size": list(sizes["source"]), "target_size": list(sizes["target"]), "batch_per_domain": batch,
        "configured": {"precision": configured.precision, "channels_last": configured.channels_last,
                       "global_d_width": configured.alignment.global_d_width,
                       "global_d_pool": configured.alignment.global_d_pool},
        "reference": {"precision": "fp32", "channels_last": False, "global_d_width": ADVENT_D_WIDTH,
                      "global_d_pool": 1},
        "iterations_per_repeat": iterations, "repeats": repeats,
        "reference_s_per_iter": statistics.median(seconds["reference"]),
        "configured_s_per_iter": statistics.median(seconds["configured"]),
        "speedup": statistics.median(ratios), "speedup_min": min(ratios), "speedup_max": max(ratios),
        "reference_breakdown_s_per_iter": {k: round(v, 4) for k, v in breakdown.items()},
        "peak_rss_mib": round(peak_rss_mib()),
    }
    if peak_cuda:
        result["peak_cuda_mib"] = {k: round(v) for k, v in peak_cuda.items()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setting", choices=("default", "paper"), default="default")
    parser.add_argument("--iterations", type=int, default=3, help="iterations per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("reports/bench.json"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="params override for the configured step, e.g. train.precision=bf16")
    args = parser.parse_args()
    params = config.load_params()
    for pair in args.set:
        key, _, value = pair.partition("=")
        node = params
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = json.loads(value) if value[:1] in "[{0123456789-tfn" else value
    params = config.parse(params)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    result = measure(args.setting, params, device, args.iterations, args.repeats)
    if args.setting == "default":
        result["data_loading_s_per_iter"] = data_loading_s(params, 10, device)
    print(json.dumps(result, indent=2))
    key = f"{args.setting}_{device.type}" + (f"_{'_'.join(args.set)}" if args.set else "")
    existing = json.loads(args.out.read_text()) if args.out.is_file() else {}
    existing[key] = result
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(existing, indent=2) + "\n")


if __name__ == "__main__":
    main()
