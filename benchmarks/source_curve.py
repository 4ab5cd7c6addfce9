"""Does the source model converge? Source-only training at a doubling grid of lengths, scored on held-out source.

    PYTHONPATH=src OMP_NUM_THREADS=1 .venv/bin/python benchmarks/source_curve.py --iterations 300 600 1200 2400

Needs a prepared workspace (`dvc repro prepare`: source train, target dev and their lists). For each length N
it trains the pretrain stage's model with ``pretrain.iterations = pretrain.max_iters = N`` (its own full poly
schedule, as a user who sets that length gets it; the stage's own code, ``stages.training_stage``) and scores it
on a **held-out source** set (``--heldout`` images the benchmark never wrote: source indices from
``prepare.num_source`` on, same generator and seed) and, for information, on target dev. Writes
reports/sweeps/source_curve.{csv,md,png}, the CSV after each length; lengths already in the CSV are kept (one
seed, the committed params: delete the CSV after changing them).

Rule, fixed before the first run (it looks at held-out source only, never at target or at an alignment method):
the *converged* length is the smallest N of the grid whose doubling adds less than ``--flat`` (1.0) mIoU on
held-out source. The adaptation study's `converged` regime (docs/experiments.md) pretrains that long.
"""

from __future__ import annotations

import argparse
import copy
import csv
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from globallocal import config  # noqa: E402
from globallocal.checkpoints import model_from_checkpoint  # noqa: E402
from globallocal.data.file_lists import TARGET_DEV_LIST, read_list  # noqa: E402
from globallocal.data.labels import NUM_CLASSES  # noqa: E402
from globallocal.data.loading import source_dataset, target_dataset  # noqa: E402
from globallocal.data.synthetic import write_source_examples  # noqa: E402
from globallocal.evaluation.metrics import evaluate  # noqa: E402
from globallocal.runtime import resolve_device  # noqa: E402
from globallocal.training.stage import training_stage  # noqa: E402

OUT = Path("reports/sweeps/source_curve")


def converged_length(rows: list[dict], flat: float) -> int | None:
    """The smallest length whose doubling adds less than ``flat`` held-out source mIoU (None: not reached).

    ``rows``: {"iterations", "source_heldout_miou"} for a doubling grid.
    """
    by_length = {row["iterations"]: row["source_heldout_miou"] for row in rows}
    for length in sorted(by_length):
        if 2 * length in by_length and by_length[2 * length] - by_length[length] < flat:
            return length
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, nargs="+", default=[300, 600, 1200, 2400])
    parser.add_argument("--heldout", type=int, default=100, help="held-out source images")
    parser.add_argument("--flat", type=float, default=1.0, help="mIoU a doubling must add to count as not flat")
    args = parser.parse_args()

    base = config.load_params()
    params = config.parse(base)
    synthetic = params.synthetic_config()
    if synthetic is None:
        raise SystemExit("source_curve.py needs the embedded benchmark (prepare.generate: true)")
    scratch = Path(tempfile.mkdtemp(prefix="source_curve-"))
    heldout_names = write_source_examples(
        scratch, synthetic, range(synthetic.num_source, synthetic.num_source + args.heldout))
    data = params.data
    device = resolve_device(params.device)
    csv_path = OUT.with_suffix(".csv")
    rows = [] if not csv_path.is_file() else [
        {key: float(value) if "miou" in key or key == "train_s" else int(value) for key, value in row.items()}
        for row in csv.DictReader(csv_path.open())]
    for length in args.iterations:
        if any(row["iterations"] == length for row in rows):
            continue
        overrides = copy.deepcopy(base)
        overrides["pretrain"].update(iterations=length, max_iters=length)
        overrides["train"]["snapshot_every"] = 0
        run = config.parse(overrides)
        checkpoint = scratch / f"pretrain-{length}.pt"
        started = time.perf_counter()
        training_stage(run.stage_config("pretrain"), checkpoint, scratch / f"source-curve-{length}")
        seconds = time.perf_counter() - started
        model, _ = model_from_checkpoint(checkpoint)
        norm = model.input_normalization
        splits = {
            "source_heldout_miou": source_dataset(data.source, scratch / "gta5", heldout_names, data.source_size,
                                                  norm),
            "target_dev_miou": target_dataset(data.target_root, "train", read_list(data.lists_dir / TARGET_DEV_LIST),
                                              data.target_size, norm, with_labels=True, resize_label=False),
        }
        scores = {name: evaluate(model, dataset, device, NUM_CLASSES)[0].to_metrics()["miou"]
                  for name, dataset in splits.items()}
        rows.append({"iterations": length, **scores, "train_s": round(seconds, 1)})
        print(rows[-1], flush=True)
        rows.sort(key=lambda row: row["iterations"])
        OUT.parent.mkdir(parents=True, exist_ok=True)
        with open(csv_path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    chosen = converged_length(rows, args.flat)
    lines = [f"Source-only training length against held-out source mIoU ({args.heldout} images) and target dev; "
             f"shift {synthetic.shift}-{synthetic.shift_severity}, seed {params.seed}.", "",
             "| pretrain iterations | held-out source mIoU | target dev mIoU | train s |", "|---|---|---|---|"]
    lines += [f"| {r['iterations']} | {r['source_heldout_miou']:.2f} | {r['target_dev_miou']:.2f} | {r['train_s']} |"
              for r in rows]
    verdict = (f"Converged (the next doubling adds < {args.flat} held-out source mIoU): **{chosen}** iterations."
               if chosen else f"Not converged on this grid: every doubling adds >= {args.flat} mIoU.")
    OUT.with_suffix(".md").write_text("\n".join(lines + ["", verdict, ""]))
    figure, axis = plt.subplots(figsize=(5, 3.2))
    lengths = [r["iterations"] for r in rows]
    axis.plot(lengths, [r["source_heldout_miou"] for r in rows], "o-", label="held-out source")
    axis.plot(lengths, [r["target_dev_miou"] for r in rows], "s--", label="target dev")
    axis.set_xscale("log", base=2)
    axis.set_xlabel("pretrain iterations (own poly schedule)")
    axis.set_ylabel("mIoU (%)")
    axis.set_title("Source-only training length")
    axis.legend()
    figure.tight_layout()
    figure.savefig(OUT.with_suffix(".png"), dpi=120)
    print("\n".join(lines + ["", verdict]))


if __name__ == "__main__":
    main()
