"""Choose the self-training settings on target dev: train each variant from the pipeline's models, score it.

    PYTHONPATH=src OMP_NUM_THREADS=1 .venv/bin/python benchmarks/selftrain_dev.py sweeps/selftrain_dev.yaml

Needs models/adapted.pt and models/source_only.pt of the committed params (`dvc repro selftrain_control`).
Each variant (selftrain params overrides on top of params.yaml, one seed: the committed `seed`) is trained by
the selftrain stage's own code (globallocal.training.stage `training_stage` with a `SelfTraining`; `control: true`
trains the stage's control instead) into a scratch folder, then scored on target dev (choices) and val
(reported only) with the evaluate stage's metric. Writes reports/sweeps/<name>.{csv,md}; the best mean dev
mIoU is marked. One process, one thread: variants run one after another; variants already in the CSV with
the same params are kept (--rerun to train them again).
"""

from __future__ import annotations

import argparse
import copy
import csv
import sys
import tempfile
import time
from pathlib import Path

import yaml

from globallocal import config
from globallocal.checkpoints import model_from_checkpoint
from globallocal.data.file_lists import TARGET_DEV_LIST, TARGET_VAL_LIST, read_list
from globallocal.data.labels import NUM_CLASSES
from globallocal.data.loading import target_dataset
from globallocal.evaluation.metrics import evaluate
from globallocal.runtime import resolve_device
from globallocal.training import selftraining
from globallocal.training.stage import training_stage


def score(checkpoint: Path, params: config.Params) -> dict[str, float]:
    """mIoU on target val and dev, as the evaluate stage computes it (labels at native resolution)."""
    data = params.data
    model, _ = model_from_checkpoint(checkpoint)
    device = resolve_device(params.device)
    scores = {}
    for split, folder, names in (("val", "val", read_list(data.lists_dir / TARGET_VAL_LIST)),
                                 ("dev", "train", read_list(data.lists_dir / TARGET_DEV_LIST))):
        dataset = target_dataset(data.target_root, folder, names, data.target_size, model.input_normalization,
                                 with_labels=True, resize_label=False)
        result, _ = evaluate(model, dataset, device, NUM_CLASSES)
        scores[split] = result.to_metrics()["miou"]
    return scores


def run_variant(base: dict, overrides: dict, scratch: Path) -> dict:
    params = copy.deepcopy(base)
    control = overrides.pop("control", False)
    for key, value in overrides.items():
        params["selftrain"][key.removeprefix("selftrain.")] = value
    params = config.parse(params)
    data = params.data
    held_out = read_list(data.lists_dir / TARGET_DEV_LIST) + read_list(data.lists_dir / TARGET_VAL_LIST)
    method = None if control else selftraining.SelfTraining(params.selftrain_config(), held_out, NUM_CLASSES)
    out = scratch / "model.pt"
    started = time.perf_counter()
    training_stage(params.stage_config("selftrain"), out, scratch / "log",
                   init_checkpoint=Path(f"models/{params.selftrain.start}.pt"), target_stream=True,
                   self_training=method)
    seconds = time.perf_counter() - started
    return {**score(out, params), "train_s": round(seconds, 1)}


SWEEPS = Path("reports/sweeps")


def run_variants(spec: dict, run, seed: int, rerun: bool = False) -> list[dict]:
    """Each variant of ``spec`` trained by ``run(overrides, scratch folder) -> {"dev", "val", "train_s"}`` in a
    scratch folder; rows {variant, seed, dev_miou, val_miou, train_s, params}, written to
    reports/sweeps/<name>.csv after each variant. Variants already in the CSV with the same params are kept
    (not ``rerun``), so a sweep cut short continues where it stopped."""
    table = SWEEPS / f"{spec['name']}.csv"
    done = {}
    if table.is_file() and not rerun:
        with table.open(newline="") as handle:
            done = {row["variant"]: row for row in csv.DictReader(handle)}
    rows = []
    for variant, overrides in spec["variants"].items():
        params_text = " ".join(f"{k}={v}" for k, v in (overrides or {}).items())
        if variant in done and done[variant]["params"] == params_text:
            row = done[variant]
            rows.append({**row, "dev_miou": float(row["dev_miou"]), "val_miou": float(row["val_miou"])})
            continue
        with tempfile.TemporaryDirectory() as scratch:
            result = run(dict(overrides or {}), Path(scratch))
        rows.append({"variant": variant, "seed": seed, "dev_miou": result["dev"], "val_miou": result["val"],
                     "train_s": result["train_s"], "params": params_text})
        print(rows[-1], flush=True)
        SWEEPS.mkdir(parents=True, exist_ok=True)
        with table.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", type=Path, help="a sweep file: name, variants {name: {selftrain.key: value}}")
    parser.add_argument("--rerun", action="store_true", help="re-run variants already in the CSV")
    args = parser.parse_args()
    spec = yaml.safe_load(args.spec.read_text())
    base = config.load_params()
    seed = config.parse(base).seed
    rows = run_variants(spec, lambda overrides, scratch: run_variant(base, overrides, scratch), seed, args.rerun)
    best = max((r for r in rows if "control=True" not in r["params"]), key=lambda r: r["dev_miou"])
    lines = ["| variant | dev mIoU | val mIoU | train s | params |", "|---|---:|---:|---:|---|"]
    for r in rows:
        mark = " **(best dev)**" if r is best else ""
        lines.append(f"| {r['variant']}{mark} | {r['dev_miou']:.2f} | {r['val_miou']:.2f} | {r['train_s']} "
                     f"| `{r['params']}` |")
    (SWEEPS / f"{spec['name']}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    Path("dvc.yaml").is_file() or sys.exit("run from the repository root")
    main()
