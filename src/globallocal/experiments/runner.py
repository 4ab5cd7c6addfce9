"""Run a set of params variants over training seeds as DVC experiments; tabulate dev and val mIoU.

The experiment runner: it writes reports/ablation.csv, which the `report` stage reads, so it lives in the
library (``python -m globallocal.experiments``), not among the speed benchmarks.

    python -m globallocal.experiments sweeps/local_dev.yaml --jobs 2        # a sweep file
    python -m globallocal.experiments ablation --seeds 0 1 2 --jobs 2       # the main table
    python -m globallocal.experiments ablation --seeds 0 1 2 --no-run       # tables only
    python -m globallocal.experiments goals                                  # the fair game's goals, per seed

A sweep file names variants (params overrides on top of the committed params.yaml) and seeds, and may name
`models` (keys of reports/metrics.json: source_only, oracle, ...; default the adapted model): whose dev and
val mIoU it tabulates, one table each. Every
(variant, seed) becomes one queued experiment, `dvc exp run --queue -n <sweep>-<variant>-s<seed> -S ...`,
run by `dvc queue start --jobs N` (each job single-threaded, so N jobs share N cores without
oversubscription; the workspace stays free for other DVC commands while they run); experiments of the
current commit that already have metrics are reused, and stages
whose deps did not change (pretrain and oracle of a seed, source_only) come from DVC's run cache.

`ablation` is the paper's main table (``globallocal.experiments.main_table``): every global family (adaptsegnet, advent,
minent) with the committed (dev-selected) local settings (`local = 1`) and with `adapt.lambda_adv_local = 0`
(`local = 0`), the run with every alignment weight 0, plus source_only, AdaBN and oracle, over the seeds. A
run of a family in `--selftrain-families` also self-trains its adapted model for `selftrain.max_iters`
iterations (the `selftrain` stage) and runs its control, so it gives a `selftrain = 0` row (the adapted
model) and a `selftrain = 1` row (the self-trained one, with its control's scores in `control_val_miou`,
`control_dev_miou`); such a run is named `<family>-local<l>-st`, apart from the adapt-only run. One more run
per seed self-trains the source-only model (`selftrain.start: source_only`, family `source_only`,
`selftrain = 1`). `--no-selftrain` leaves those rows out. `--family-set FAMILY:KEY=VALUE` with `--tag NAME`
runs families at other weights (say) under their own names; their rows carry `setting = NAME` (`committed`
otherwise). It writes reports/ablation.csv
(`family,local,selftrain,seed,val_miou,dev_miou,control_val_miou,control_dev_miou,bn,shift,setting`, one row
per model; rows of other cells and settings are kept) and reports/ablation.md (today's cell) or
reports/ablation_<shift>_<bn>[_<tag>].md; the `report` stage draws reports/figures/ablation.png from today's
cell's committed rows and puts the table in reports/report.md.

A finished experiment is reused under its name only if it ran the params the run asks for; one that did not
stops the runner before anything is queued, with the keys that differ. A sweep file writes
reports/sweeps/<name>.{csv,md,png}; the variant with
the best mean **dev** mIoU is marked (val is printed beside it, never used to choose).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from globallocal.alignment.global_alignment import ALIGNING_FAMILIES as FAMILIES
from globallocal.experiments.main_table import ablation, cell_of, local_diagnostics
from globallocal.experiments.queue import CODE_REF, finished_experiments, run_all, run_name, write_csv
from globallocal.reporting import plot_sweep, sweep_table
from globallocal.reporting.ablation import ABLATION_FILE, read_ablation, rows_of_regime
from globallocal.reporting.goals import goals_by_setting

#: The model whose scores a sweep tabulates unless its file names others under ``models``.
DEFAULT_SWEEP_MODELS = ("adapted",)


def sweep_rows(name: str, seeds: list[int], variants: dict, models: tuple[str, ...], metrics: dict) -> list[dict]:
    """One row per (model, variant, seed) that has metrics: dev and val mIoU of ``model`` (a key of
    reports/metrics.json: adapted, source_only, adabn, oracle, ...). Rows carry ``model`` only when the
    sweep names models (its CSV then has that column)."""
    rows = []
    for model in models:
        for variant, overrides in variants.items():
            for seed in seeds:
                result = metrics.get(run_name(name, variant, seed))
                if result is None:
                    continue
                row = {"variant": variant, "seed": seed, "val_miou": result[model]["miou"],
                       "dev_miou": result["dev"][model]["miou"],
                       "params": " ".join(f"{k}={v}" for k, v in overrides.items())}
                rows.append(row if models == DEFAULT_SWEEP_MODELS else {"model": model, **row})
    return rows


def sweep(spec_path: Path, jobs: int, no_run: bool) -> None:
    """Run a sweep file's variants over its seeds; tabulate the dev and val mIoU of its ``models`` (default:
    the adapted model), one table each, the best mean dev variant marked."""
    spec = yaml.safe_load(spec_path.read_text())
    name, seeds, variants = spec["name"], spec["seeds"], spec["variants"]
    models = tuple(spec.get("models", DEFAULT_SWEEP_MODELS))
    runs = {
        run_name(name, variant, seed): {**overrides, "seed": seed}
        for variant, overrides in variants.items() for seed in seeds
    }
    metrics = finished_experiments() if no_run else run_all(runs, jobs)
    rows = sweep_rows(name, seeds, variants, models, metrics)
    out = Path("reports/sweeps")
    write_csv(out / f"{name}.csv", rows)
    if models == DEFAULT_SWEEP_MODELS:
        table = sweep_table(rows)
        plot_sweep(rows, out / f"{name}.png", title=f"{name}: adapted mIoU by variant (mean over seeds {seeds})")
    else:
        sections = []
        for model in models:
            model_rows = [row for row in rows if row["model"] == model]
            if not model_rows:
                continue
            sections.append(f"### {model}\n\n{sweep_table(model_rows)}")
            plot_sweep(model_rows, out / f"{name}_{model}.png",
                       title=f"{name}: {model} mIoU by variant (mean over seeds {seeds})")
        table = "\n\n".join(sections)
    (out / f"{name}.md").write_text(table + "\n")
    print(table)


def goals(sets: dict) -> None:
    """The fair game's goals (reporting.goals) on reports/ablation.csv's rows of the BatchNorm protocol,
    statistics setting and backbone of params.yaml (with ``sets`` on top), the committed weights' first and
    then any other setting's; writes reports/study_goals.md."""
    cell = cell_of(sets)
    rows = rows_of_regime(read_ablation(ABLATION_FILE), cell["bn"], cell["stats"], cell["backbone"])
    table = goals_by_setting(rows)
    header = (f"The fair game's goals (docs/fair_game.md, section 5) on `{ABLATION_FILE}`: BatchNorm {cell['bn']}, "
              f"statistics `{cell['stats']}`, backbone `{cell['backbone']}`.")
    out = Path("reports/study_goals.md")
    out.write_text(header + "\n\n" + table + "\n")
    print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", help="a sweep file (YAML), 'ablation', 'diagnostics' (the local term's, of a "
                                     "cell's ablation runs) or 'goals' (the fair game's, on reports/ablation.csv)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="ablation seeds")
    parser.add_argument("--jobs", type=int, default=2, help="experiments run side by side")
    parser.add_argument("--no-run", action="store_true", help="only tabulate what has been run")
    parser.add_argument("--no-selftrain", action="store_true",
                        help="ablation without the self-training rows (selftrain.iterations 0)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="ablation: a params override for every run (the cell), e.g. --set prepare.shift=fog")
    parser.add_argument("--selftrain-families", nargs="+", default=[*FAMILIES, "source_only"], metavar="FAMILY",
                        help="ablation: the families whose runs also self-train; source_only: also self-train "
                             "the source-only model (default: all)")
    parser.add_argument("--selftrain-local", nargs="+", type=int, default=[0, 1], choices=(0, 1), metavar="L",
                        help="ablation: which runs of a self-training family self-train: 1 = only the one with the "
                             "local term (the committed start), the other stays adapt-only (default: 0 1)")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES, metavar="FAMILY",
                        help="ablation: the global families to run beside the weight-0 run (default: all)")
    parser.add_argument("--family-set", action="append", default=[], metavar="FAMILY:KEY=VALUE",
                        help="ablation: an override for one family's runs only (e.g. its weights, "
                             "advent:adapt.lambda_adv_main=0.1); needs --tag")
    parser.add_argument("--tag", help="ablation: the name of the --family-set setting (experiment names, the "
                                      "`setting` column of reports/ablation.csv)")
    parser.add_argument("--code-at", nargs="+", default=["HEAD"], metavar="COMMIT",
                        help="reuse experiments whose training/evaluation code equals one of these commits' "
                             "(default HEAD)")
    args = parser.parse_args()
    CODE_REF[:] = args.code_at
    sets = {}
    for item in args.set:
        key, _, value = item.partition("=")
        sets[key] = yaml.safe_load(value)
    family_sets: dict[str, dict] = {}
    for item in args.family_set:
        family, _, assignment = item.partition(":")
        key, _, value = assignment.partition("=")
        if family not in FAMILIES or not key or not value:
            parser.error(f"--family-set {item!r}: expected FAMILY:KEY=VALUE with FAMILY one of {', '.join(FAMILIES)}")
        family_sets.setdefault(family, {})[key] = yaml.safe_load(value)
    if family_sets and not args.tag:
        parser.error("--family-set needs --tag (a name for that setting's runs and rows)")
    if args.what == "goals":
        goals(sets)
    elif args.what == "diagnostics":
        local_diagnostics(args.seeds, sets)
    elif args.what == "ablation":
        ablation(args.seeds, args.jobs, args.no_run, selftrain=not args.no_selftrain, sets=sets,
                 selftrain_families=tuple(args.selftrain_families), families=tuple(args.families),
                 family_sets=family_sets, tag=args.tag, selftrain_locals=tuple(args.selftrain_local))
    else:
        sweep(Path(args.what), args.jobs, args.no_run)
