"""The paper-size adaptation step in every variant the GPU check reports, each with its own figure.

    python benchmarks/paper_variants.py --out variants.json                 # CUDA, the paper's sizes
    python benchmarks/paper_variants.py --tiny --out variants.json          # CPU dry run, tiny sizes

Same method configuration in every variant (the paper's: DeepLab-v2 ResNet-101 at output stride 8,
source 1280x720 + target 1024x512, batch 1 + 1, D_g width 64 on the whole map, D_l on 1x1xK outputs,
both heads, local term on). ``reference`` is the ADVENT-style fp32 step of step_speed.py (NCHW,
PyTorch's defaults: no cuDNN autotuning, unfused optimisers, each term recomputing its softmax);
every other variant is ``training.train_step`` with the named switches (params ``train.*``). Each
variant builds a fresh seeded model, runs ``--warmup`` untimed iterations (cuDNN autotuning, allocator)
and ``--iters`` timed ones on the same two random batches; peak memory is the CUDA allocator's peak
over both (the process's max RSS on the CPU, which only grows and is not per variant).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import time
from pathlib import Path

import torch
from step_speed import ADVENT_D_WIDTH, PAPER_SIZES, Timer, batches, peak_rss_mib, reference_step

from globallocal import config
from globallocal.data.labels import NUM_CLASSES
from globallocal.models import build_model
from globallocal.training.loop import build_train_state, train_step

#: CPU dry run: sizes that keep a ResNet-101 iteration to about a second on one core.
TINY_SIZES = {"source": (96, 54), "target": (64, 32)}

#: name -> the TrainConfig fields that differ from the configured default (params.yaml).
VARIANTS = {
    "configured fp32": {"precision": "fp32"},
    "configured bf16": {"precision": "bf16"},
    "configured fp16": {"precision": "fp16"},
    "bf16, NCHW (no channels_last)": {"precision": "bf16", "channels_last": False},
    "bf16, no cuDNN autotuning": {"precision": "bf16", "cudnn_benchmark": False},
    "bf16, unfused optimisers": {"precision": "bf16", "fused_optimizer": False},
    "bf16 + torch.compile": {"precision": "bf16", "compile": True},
}
REFERENCE = "reference (ADVENT-style fp32)"


def paper_config(params: config.Params):
    """The adapt stage's TrainConfig at the paper's method settings (what step_speed.py --setting paper uses)."""
    configured = params.train_config("adapt", aligned=True)
    alignment = dataclasses.replace(
        configured.alignment, global_d_width=ADVENT_D_WIDTH, global_d_pool=1,
        local=dataclasses.replace(configured.alignment.local, window=1),
    )
    return dataclasses.replace(configured, alignment=alignment, multi_level=True)


def run_variant(name: str, cfg, sizes: dict, device: torch.device, warmup: int, iters: int) -> dict:
    spec = {"arch": "deeplabv2_resnet101", "num_classes": NUM_CLASSES, "backbone_weights": None,
            "bn_protocol": "frozen", "output_stride": 8}
    torch.manual_seed(0)
    state = build_train_state(build_model(**spec).to(device).train(), cfg, NUM_CLASSES)
    state.aligners.train()
    data = [batches(1, sizes, torch.Generator().manual_seed(seed)) for seed in (0, 1)]
    timer = Timer(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)

    def step(i):
        source, target = data[i % 2]
        if name == REFERENCE:
            reference_step(state, cfg, source, target, device, timer)
        else:
            train_step(state, cfg, source, target, device)

    began = time.perf_counter()
    for i in range(warmup):
        step(i)
    timer.sync()
    warm_s = time.perf_counter() - began
    start = time.perf_counter()
    for i in range(iters):
        step(i)
    timer.sync()
    result = {"s_per_iter": (time.perf_counter() - start) / iters, "warmup_s": round(warm_s, 2),
              "precision": cfg.precision, "channels_last": cfg.channels_last,
              "cudnn_benchmark": cfg.cudnn_benchmark, "fused_optimizer": cfg.fused_optimizer,
              "compile": cfg.compile}
    if device.type == "cuda":
        result["peak_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20)
    else:
        result["peak_rss_mib"] = round(peak_rss_mib())
    state = data = None  # free this variant's memory before the next one
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    torch.backends.cudnn.benchmark = False  # the next variant starts from PyTorch's default
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="CPU dry run at tiny sizes")
    parser.add_argument("--only", action="append", default=[], help="run only these variants (repeatable)")
    parser.add_argument("--skip", action="append", default=[], help="leave these variants out (repeatable)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--out", type=Path, required=True, help="JSON written after each variant")
    args = parser.parse_args()
    device = torch.device("cpu" if args.tiny else "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: pass --tiny for the CPU dry run")
    sizes = TINY_SIZES if args.tiny else PAPER_SIZES
    params = config.load_validated_params()
    configured = paper_config(params)
    reference = dataclasses.replace(configured, precision="fp32", channels_last=False, log_grad_norms=False,
                                    cudnn_benchmark=False, fused_optimizer=False, compile=False)
    plan = {REFERENCE: reference,
            **{name: dataclasses.replace(configured, **fields) for name, fields in VARIANTS.items()}}
    if args.only:
        plan = {name: cfg for name, cfg in plan.items() if name in args.only}
    plan = {name: cfg for name, cfg in plan.items() if name not in args.skip}
    results = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
               "source_size": list(sizes["source"]), "target_size": list(sizes["target"]), "batch_per_domain": 1,
               "warmup": args.warmup, "iters": args.iters, "variants": {}}
    for name, cfg in plan.items():
        if cfg.precision == "fp16" and device.type != "cuda":
            results["variants"][name] = {"skipped": "fp16 is CUDA only"}
        else:
            results["variants"][name] = run_variant(name, cfg, sizes, device, args.warmup, args.iters)
        print(name, json.dumps(results["variants"][name]), flush=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
