"""Adaptation from a converged source model (issue "Alignment that shows": the regime in which the game can start).

    PYTHONPATH=src OMP_NUM_THREADS=1 .venv/bin/python benchmarks/regime_dev.py sweeps/regime_dev.yaml \
        --init /path/to/pretrain-2400.pt

``--init``: a source-only checkpoint trained to convergence on the prepared cell (benchmarks/source_curve.py
writes one per length; its rule picks the length). Each variant of the spec trains the `adapt` stage's model
from it with the stage's own code (``stages.training_stage``) into a scratch folder and scores it on target dev
(choices) and val (reported only), like benchmarks/selftrain_dev.py. A variant's ``kind``: ``adapt`` (default;
params overrides on top of params.yaml), ``source_only`` (the same schedule without target or alignment), or
``adabn`` (that source-only model with BatchNorm statistics re-estimated on target train, as the adabn stage).
Writes reports/sweeps/<name>.{csv,md}; variants already in the CSV with the same params are kept.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import yaml
from selftrain_dev import SWEEPS, run_variants, score  # benchmarks/ is on sys.path when this script runs

from globallocal import config
from globallocal.checkpoints import CheckpointDescription, model_from_checkpoint, save_checkpoint
from globallocal.runtime import resolve_device
from globallocal.training.adabn import adapt_batchnorm
from globallocal.training.stage import training_stage

KINDS = ("adapt", "source_only", "adabn")


def run_variant(base: dict, overrides: dict, init: Path, scratch: Path) -> dict:
    params = copy.deepcopy(base)
    kind = overrides.pop("kind", "adapt")
    if kind not in KINDS:
        raise SystemExit(f"variant kind {kind!r}: allowed {', '.join(KINDS)}")
    for key, value in overrides.items():
        section, name = key.split(".")
        params[section][name] = value
    params = config.parse(params)
    out = scratch / "model.pt"
    started = time.perf_counter()
    training_stage(params.stage_config("adapt", aligned=kind == "adapt"), out, scratch / "log", init_checkpoint=init)
    if kind == "adabn":
        model, checkpoint = model_from_checkpoint(out)
        adapt_batchnorm(model, params.data_config(), params.adabn.batch_size, resolve_device(params.device))
        save_checkpoint(out, model.cpu(), checkpoint["model_spec"], {"iteration": checkpoint.get("iteration", 0)},
                        description=CheckpointDescription.of_data(params.data_config()))
    seconds = time.perf_counter() - started
    return {**score(out, params), "train_s": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", type=Path, help="name, variants {name: {kind: ..., adapt.key: value}}")
    parser.add_argument("--init", type=Path, required=True, help="the converged source-only checkpoint")
    args = parser.parse_args()
    if not args.init.is_file():
        raise SystemExit(f"--init {args.init}: no such checkpoint (benchmarks/source_curve.py trains one)")
    spec = yaml.safe_load(args.spec.read_text())
    base = config.load_params()
    seed = config.parse(base).seed
    rows = run_variants(spec, lambda overrides, scratch: run_variant(base, overrides, args.init, scratch), seed)
    lines = [f"Adaptation from `{args.init.name}` (seed {seed}); dev chooses, val is reported only.", "",
             "| variant | dev mIoU | val mIoU | train s | params |", "|---|---:|---:|---:|---|"]
    lines += [f"| {r['variant']} | {r['dev_miou']:.2f} | {r['val_miou']:.2f} | {r['train_s']} | `{r['params']}` |"
              for r in rows]
    (SWEEPS / f"{spec['name']}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    Path("dvc.yaml").is_file() or sys.exit("run from the repository root")
    main()
