"""Seconds per training iteration of the embedded default, today's backbone beside EfficientNet-Lite0.

    python benchmarks/backbone_speed.py                    # params.yaml's sizes, batch and schedule
    python benchmarks/backbone_speed.py --iterations 5 --repeats 5

Both networks are built from params.yaml's model section (sizes, batch, output stride, BatchNorm protocol
and momentum); only ``model.arch`` / ``model.backbone_weights`` differ: the committed default (MobileNetV3-
small from random init) and ``efficientnet_lite0`` from its packaged ImageNet weights. Each is timed on
the three kinds of iteration the default pipeline runs, with the library's own ``train_step`` and the
params' TrainConfig (random batches, so no data loading):

* **source**: the supervised source step of pretrain and source_only (source size);
* **target**: the oracle's supervised step (target size);
* **adapt**: source step, target forward, the alignment terms through D_g and D_l, the D step.

Repeats alternate the networks (ABAB...), so a machine that gets busier slows both alike; each figure is
the median over repeats (the first round warms up and is dropped). The estimate of training seconds is
pretrain.iterations + adapt.iterations (source_only) source steps, adapt.iterations adapt steps and
oracle.iterations target steps: the stages' training loops only, without their start-up, data loading,
AdaBN or evaluation (for those, time `dvc repro`).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from globallocal import config
from globallocal.data.labels import IGNORE_INDEX, NUM_CLASSES
from globallocal.models import build_model
from globallocal.training.loop import build_train_state, train_step

#: The candidate: its arch and weights replace the committed ones; every other model key is params.yaml's.
CANDIDATE = {"arch": "efficientnet_lite0", "backbone_weights": "imagenet"}
STEPS = ("source", "target", "adapt")


def random_batch(batch: int, size_wh: tuple[int, int], generator: torch.Generator, labelled: bool) -> dict:
    """{"image": (N, 3, H, W) standard-normal images[, "label": (N, H, W) class ids, top tenth void]}."""
    width, height = size_wh
    out = {"image": torch.randn(batch, 3, height, width, generator=generator)}
    if labelled:
        out["label"] = torch.randint(0, NUM_CLASSES, (batch, height, width), generator=generator)
        out["label"][:, : height // 10] = IGNORE_INDEX
    return out


class Network:
    """One network's three training states (a fresh model each), timed step by step."""

    def __init__(self, name: str, spec: dict, params: config.Params):
        self.name, self.spec = name, spec
        start = time.perf_counter()
        torch.manual_seed(0)
        build_model(**spec)
        self.build_s = time.perf_counter() - start  # what a stage pays before its first step (weights included)
        self.states = {}
        for step in STEPS:
            torch.manual_seed(0)
            cfg = params.train_config("adapt" if step == "adapt" else "pretrain", aligned=step == "adapt")
            self.states[step] = (build_train_state(build_model(**spec).train(), cfg, NUM_CLASSES), cfg)
        self.seconds = {step: [] for step in STEPS}
        self.cpu_seconds = {step: [] for step in STEPS}

    def run(self, step: str, batches: list[tuple[dict, dict | None]], keep: bool) -> None:
        state, cfg = self.states[step]
        start, start_cpu = time.perf_counter(), time.process_time()
        for source, target in batches:
            train_step(state, cfg, source, target, torch.device("cpu"))
        if keep:
            self.seconds[step].append((time.perf_counter() - start) / len(batches))
            self.cpu_seconds[step].append((time.process_time() - start_cpu) / len(batches))

    def median(self, step: str) -> float:
        """Median wall seconds per iteration of ``step``."""
        return statistics.median(self.seconds[step])

    def median_cpu(self, step: str) -> float:
        """Median CPU seconds (all threads) per iteration: less inflated than wall time on a shared machine."""
        return statistics.median(self.cpu_seconds[step])


def step_batches(params: config.Params, iterations: int) -> dict[str, list[tuple[dict, dict | None]]]:
    """The batches each kind of step trains on (the same for both networks)."""
    data, batch = params.data, params.train.batch_size
    generator = torch.Generator().manual_seed(0)
    return {
        "source": [(random_batch(batch, data.source_size, generator, True), None) for _ in range(iterations)],
        "target": [(random_batch(batch, data.target_size, generator, True), None) for _ in range(iterations)],
        "adapt": [(random_batch(batch, data.source_size, generator, True),
                   random_batch(batch, data.target_size, generator, False)) for _ in range(iterations)],
    }


def training_seconds(network: Network, params: config.Params) -> float:
    """The default schedule's training loops: pretrain + source_only source steps, adapt, oracle."""
    source_steps = params.pretrain.iterations + params.adapt.iterations
    return (source_steps * network.median("source") + params.adapt.iterations * network.median("adapt")
            + params.oracle.iterations * network.median("target"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=3, help="iterations per step kind and repeat")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (after one warm-up round)")
    args = parser.parse_args()
    params = config.load_validated_params()
    committed = params.model.spec(NUM_CLASSES)
    networks = [Network(f"{committed['arch']} ({committed['backbone_weights'] or 'random init'})", committed,
                        params),
                Network(f"{CANDIDATE['arch']} ({CANDIDATE['backbone_weights']})", {**committed, **CANDIDATE}, params)]
    batches = step_batches(params, args.iterations)
    for repeat in range(args.repeats + 1):
        for network in networks:
            for step in STEPS:
                network.run(step, batches[step], keep=repeat > 0)
    data = params.data
    print(f"threads {torch.get_num_threads()}, batch {params.train.batch_size} per domain, source "
          f"{data.source_size[0]}x{data.source_size[1]}, target {data.target_size[0]}x{data.target_size[1]}, "
          f"output stride {committed['output_stride']}, BN {committed['bn_protocol']}; median of {args.repeats} "
          f"repeats x {args.iterations} iterations")
    print(f"{'network':<40} {'build s':>8} {'source s/it':>12} {'target s/it':>12} {'adapt s/it':>11} "
          f"{'training s':>11}")
    for network in networks:
        print(f"{network.name:<40} {network.build_s:>8.2f} {network.median('source'):>12.3f} "
              f"{network.median('target'):>12.3f} {network.median('adapt'):>11.3f} "
              f"{training_seconds(network, params):>11.0f}")
    for network in networks:
        print(f"{network.name:<40} CPU s/it: " + ", ".join(f"{step} {network.median_cpu(step):.3f}" for step in STEPS))
    base, candidate = networks
    print("ratio (candidate / committed), wall: " + ", ".join(
        f"{step} {candidate.median(step) / base.median(step):.2f}x" for step in STEPS))


if __name__ == "__main__":
    main()
