"""Run the pipeline for several training seeds as DVC experiments and print mean and spread of mIoU.

    .venv/bin/python benchmarks/seeds.py --seeds 0 1 2        # runs missing seeds, then prints
    .venv/bin/python benchmarks/seeds.py --seeds 0 1 2 --no-run
    .venv/bin/python benchmarks/seeds.py --seeds 0 1 2 --set adapt.lambda_adv_local=0   # an ablation

Each seed is one `dvc exp run --temp -S seed=N` (a temporary copy of the committed workspace, sharing
the DVC cache, so `prepare` is restored rather than regenerated); results are read back from
`dvc exp show --all-commits --json` (experiments of earlier commits count too: check that the code
they ran is the code you mean to compare). The committed workspace counts as its own seed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

MODELS = ("source_only", "adapted", "oracle")
METRICS_FILE = "reports/metrics.json"
#: Runs must agree on these (besides the seed) to be compared: the alignment terms.
ADAPT_KEYS = {
    "adapt.global_family", "adapt.lambda_adv_main", "adapt.lambda_adv_aux", "adapt.lambda_ent_main",
    "adapt.lambda_adv_local", "adapt.local_window", "adapt.local_conf_threshold",
}
DVC = [sys.executable, "-m", "dvc"]
#: Stage commands call `python`: make it this interpreter (the project's venv).
ENV = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


def runs(node):
    """Yield every (params, metrics) pair found anywhere in `dvc exp show --json` output."""
    if isinstance(node, dict):
        data = node.get("data")
        if isinstance(data, dict) and "params" in data and "metrics" in data:
            params = data["params"].get("params.yaml", {}).get("data", {})
            metrics = (data.get("metrics") or {}).get(METRICS_FILE, {}).get("data")
            if params and metrics:
                yield params, metrics
        for value in node.values():
            yield from runs(value)
    elif isinstance(node, list):
        for value in node:
            yield from runs(value)


def param(params: dict, key: str):
    for part in key.split("."):
        params = params[part]
    return params


def parse_overrides(pairs: list[str]) -> dict:
    """["adapt.lambda_adv_local=0"] -> {"adapt.lambda_adv_local": 0} (values parsed as YAML)."""
    overrides = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        overrides[key] = yaml.safe_load(value)
    return overrides


def results_by_seed(overrides: dict) -> dict[int, dict]:
    """Metrics of every run whose params match ``overrides`` and the committed params elsewhere."""
    committed = yaml.safe_load(Path("params.yaml").read_text())
    shown = subprocess.run(DVC + ["exp", "show", "--all-commits", "--json"], capture_output=True, text=True, check=True)
    by_seed: dict[int, dict] = {}
    for params, metrics in runs(json.loads(shown.stdout)):
        wanted = {key: overrides.get(key, param(committed, key)) for key in ADAPT_KEYS | overrides.keys()}
        if all(param(params, key) == value for key, value in wanted.items()):
            by_seed.setdefault(params["seed"], metrics)
    return by_seed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="params override for every run (dvc exp run -S), e.g. adapt.lambda_adv_local=0")
    parser.add_argument("--no-run", action="store_true", help="only print what has been run")
    args = parser.parse_args()
    overrides = parse_overrides(args.set)
    if not args.no_run:
        done = results_by_seed(overrides)
        for seed in args.seeds:
            if seed not in done:
                print(f"running seed {seed} {' '.join(args.set)} ...", flush=True)
                sets = [flag for pair in args.set for flag in ("-S", pair)]
                subprocess.run(DVC + ["exp", "run", "--temp", "-S", f"seed={seed}", *sets],
                               check=True, stdout=subprocess.DEVNULL, env=ENV)
    by_seed = results_by_seed(overrides)
    seeds = [s for s in args.seeds if s in by_seed]
    if not seeds:
        sys.exit("no finished run matches; run without --no-run first")
    label = f" with {' '.join(args.set)}" if args.set else ""
    print(f"mIoU (%) on target val{label}, training seeds {seeds}:")
    print("| model | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | std |")
    print("|---|" + "---:|" * (len(seeds) + 2))
    for model in MODELS:
        values = [by_seed[s][model]["miou"] for s in seeds]
        spread = statistics.stdev(values) if len(values) > 1 else float("nan")
        cells = " | ".join(f"{v:.2f}" for v in values)
        print(f"| {model} | {cells} | {statistics.mean(values):.2f} | {spread:.2f} |")


if __name__ == "__main__":
    Path("dvc.yaml").is_file() or sys.exit("run from the repository root")
    main()
