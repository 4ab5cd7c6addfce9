"""Run a set of params variants over training seeds as DVC experiments; tabulate dev and val mIoU.

The experiment runner: it writes reports/ablation.csv, which the `report` stage reads, so it lives in the
library (``python -m globallocal.experiments``), not among the speed benchmarks.

    python -m globallocal.experiments sweeps/local_dev.yaml --jobs 2        # a sweep file
    python -m globallocal.experiments ablation --seeds 0 1 2 --jobs 2       # the main table
    python -m globallocal.experiments ablation --seeds 0 1 2 --no-run       # tables only

A sweep file names variants (params overrides on top of the committed params.yaml) and seeds. Every
(variant, seed) becomes one queued experiment, `dvc exp run --queue -n <sweep>-<variant>-s<seed> -S ...`,
run by `dvc queue start --jobs N` (each job single-threaded, so N jobs share N cores without
oversubscription; the workspace stays free for other DVC commands while they run); experiments of the current commit that already have metrics are reused, and stages
whose deps did not change (pretrain and oracle of a seed, source_only) come from DVC's run cache.

`ablation` is the paper's main table: every global family (adaptsegnet, advent, minent) with the
committed (dev-selected) local settings (`local = 1`) and with `adapt.lambda_adv_local = 0` (`local = 0`),
plus source_only and oracle, over the seeds. Each run also self-trains its adapted model (the `selftrain`
stage) and runs its control, so every (family, local, seed) gives a `selftrain = 0` row (the adapted model)
and a `selftrain = 1` row (the self-trained one, with its control's scores in `control_val_miou`,
`control_dev_miou`); one more run per seed self-trains the source-only model (`selftrain.start: source_only`,
family `source_only`, `selftrain = 1`). `--no-selftrain` sets `selftrain.iterations: 0` and leaves those rows
out. It writes reports/ablation.csv
(`family,local,selftrain,seed,val_miou,dev_miou,control_val_miou,control_dev_miou`, one row per model) and
reports/ablation.md; the `report` stage
draws reports/figures/ablation.png from the CSV and puts the table in reports/report.md. A sweep file writes reports/sweeps/<name>.{csv,md,png}; the variant with
the best mean **dev** mIoU is marked (val is printed beside it, never used to choose).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from globallocal.experiment_files import experiment_refs, logged_series, output_file
from globallocal.reporting import alignment_table, diagnostics_table, plot_sweep, selftrain_table, sweep_table

DVC = [sys.executable, "-m", "dvc"]
#: Stage commands call `python`: make it this interpreter; one thread per job (see the docstring). A queued
#: experiment runs in its own copy of the repository (.dvc/tmp/exps/tmp...): the relative ``src`` first on
#: PYTHONPATH makes its stages import that copy's library, not the workspace's through the editable install
#: (without it, editing src/ while a queue runs changes experiments already queued).
ENV = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           PYTHONPATH=os.pathsep.join(filter(None, ("src", os.environ.get("PYTHONPATH")))),
           OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
METRICS_FILE = "reports/metrics.json"
#: Target dev mIoU; experiments of older commits hold it under "dev" in METRICS_FILE instead.
METRICS_DEV_FILE = "reports/metrics_dev.json"
FAMILIES = ("adaptsegnet", "advent", "minent")
#: The code an experiment's metrics depend on besides its params: everything the stages up to
#: `evaluate` run (the report's drawing code does not change a number).
CODE_PATHS = ("src", "pipeline", ":(exclude)src/globallocal/reporting", ":(exclude)src/globallocal/experiments.py",
              ":(exclude)pipeline/report.py")
POLL_S = 20


def run_name(sweep: str, variant: str, seed: int) -> str:
    return f"{sweep}-{variant}-s{seed}".replace(".", "p").replace("_", "-")


#: The commit whose code experiments must match (``--code-at``); HEAD unless told otherwise.
CODE_REF = ["HEAD"]


def finished_experiments() -> dict[str, dict]:
    """{experiment name: metrics} of the experiments that have metrics, on any commit.

    A name is reused across commits only when the code is the same: an experiment counts if no file the
    training and evaluation stages run (``CODE_PATHS``) differs between its baseline commit and HEAD
    (or the ``--code-at`` commit). Each
    metrics dict gets the baseline commit under ``"_commit"``.
    """
    shown = subprocess.run(DVC + ["exp", "show", "--all-commits", "--json"], capture_output=True, text=True,
                           check=True, env=ENV)
    # Only experiments that finished have a ref; queued and running ones show their baseline's metrics.
    refs = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], capture_output=True,
                          text=True, check=True).stdout.split()
    finished = {ref.rsplit("/", 1)[1] for ref in refs}
    found = {}
    for commit in json.loads(shown.stdout or "[]"):
        baseline = commit.get("rev")
        if not baseline or baseline == "workspace" or not _same_code(baseline):
            continue
        for exp in commit.get("experiments") or []:
            for revision in exp.get("revs") or []:
                data = revision.get("data") or {}
                metrics = ((data.get("metrics") or {}).get(METRICS_FILE) or {}).get("data")
                dev = ((data.get("metrics") or {}).get(METRICS_DEV_FILE) or {}).get("data")
                if metrics and dev:
                    metrics = {**metrics, "dev": dev}
                name = revision.get("name")
                if name in finished and metrics and name not in found:
                    found[name] = {**metrics, "_commit": baseline[:7]}
    return found


def _same_code(commit: str) -> bool:
    """The experiment's training and evaluation code equals one of the CODE_REF commits' (a commit that
    restructured the code without changing a number, shown bit-identical, can be named beside HEAD)."""
    return any(subprocess.run(["git", "diff", "--quiet", commit, ref, "--", *CODE_PATHS]).returncode == 0
               for ref in CODE_REF)


def check_no_repro_running(rwlock: Path = Path(".dvc/tmp/rwlock")) -> None:
    """Refuse to queue while a `dvc repro` runs in this workspace.

    `dvc exp run --queue -S ...` writes the overrides into the workspace's params.yaml for a moment; a stage
    of a running repro that reads params.yaml then would train with another run's params and be recorded
    under its own.
    """
    if not rwlock.is_file():
        return
    for entries in json.loads(rwlock.read_text() or "{}").values():
        for holders in entries.values():
            for holder in holders:
                if "repro" in holder.get("cmd", "") and _alive(holder.get("pid", -1)):
                    sys.exit(f"a `dvc repro` (pid {holder['pid']}) is running in this workspace: queueing "
                             "experiments now would rewrite params.yaml under it; wait for it to finish")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def run_all(runs: dict[str, dict], jobs: int) -> dict[str, dict]:
    """Queue the runs that have no results yet, run the queue, return every run's metrics."""
    check_no_repro_running()
    done = finished_experiments()
    missing = [name for name in runs if name not in done and name not in _queued_or_running()]
    for name in missing:
        sets = [flag for key, value in runs[name].items() for flag in ("-S", f"{key}={json.dumps(value)}")]
        subprocess.run(DVC + ["exp", "run", "--queue", "-n", name, *sets], check=True, env=ENV,
                       stdout=subprocess.DEVNULL)
    if missing:
        started = time.perf_counter()
        print(f"running {len(missing)} experiments with {jobs} jobs ...", flush=True)
        subprocess.run(DVC + ["queue", "start", "--jobs", str(jobs)], check=True, env=ENV)
        while _queue_busy():
            time.sleep(POLL_S)
        print(f"done in {(time.perf_counter() - started) / 60:.1f} min", flush=True)
        done = finished_experiments()
    failed = [name for name in runs if name not in done]
    if failed:
        sys.exit(f"experiments without metrics (see `dvc queue logs NAME`): {', '.join(failed)}")
    return {name: done[name] for name in runs}


def _queued_or_running() -> set[str]:
    """Names of the experiments the DVC queue holds or runs now (queued again, they would run twice)."""
    status = subprocess.run(DVC + ["queue", "status"], capture_output=True, text=True, env=ENV).stdout
    return {line.split()[1] for line in status.splitlines()
            if len(line.split()) > 2 and line.split()[-1] in ("Queued", "Running")}


def _queue_busy() -> bool:
    status = subprocess.run(DVC + ["queue", "status"], capture_output=True, text=True, env=ENV).stdout
    return any(word in status for word in ("Queued", "Running"))


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)


def sweep(spec_path: Path, jobs: int, no_run: bool) -> None:
    spec = yaml.safe_load(spec_path.read_text())
    name, seeds, variants = spec["name"], spec["seeds"], spec["variants"]
    runs = {
        run_name(name, variant, seed): {**overrides, "seed": seed}
        for variant, overrides in variants.items() for seed in seeds
    }
    metrics = finished_experiments() if no_run else run_all(runs, jobs)
    rows = []
    for variant, overrides in variants.items():
        for seed in seeds:
            result = metrics.get(run_name(name, variant, seed))
            if result is not None:
                rows.append({"variant": variant, "seed": seed, "val_miou": result["adapted"]["miou"],
                             "dev_miou": result["dev"]["adapted"]["miou"],
                             "params": " ".join(f"{k}={v}" for k, v in overrides.items())})
    out = Path("reports/sweeps")
    write_csv(out / f"{name}.csv", rows)
    table = sweep_table(rows)
    (out / f"{name}.md").write_text(table + "\n")
    plot_sweep(rows, out / f"{name}.png", title=f"{name}: adapted mIoU by variant (mean over seeds {seeds})")
    print(table)


def ablation_row(result: dict, family: str, local: int, seed: int, model: str, selftrain: int,
                 cell: dict) -> dict:
    """One row of reports/ablation.csv: ``model``'s scores in ``result``; the control's for a self-trained one.

    ``cell``: the ``bn`` protocol and the benchmark ``shift`` cell (``none`` = today's benchmark) of the run.
    """
    row = {"family": family, "local": local, "selftrain": selftrain, "seed": seed,
           "val_miou": result[model]["miou"], "dev_miou": result["dev"][model]["miou"],
           "control_val_miou": "", "control_dev_miou": "", **cell}
    if selftrain:
        row["control_val_miou"] = result["selftrain_control"]["miou"]
        row["control_dev_miou"] = result["dev"]["selftrain_control"]["miou"]
    return row


def cell_of(overrides: dict) -> dict:
    """The ``bn`` and ``shift`` columns of a run: its overrides on top of the committed params.yaml."""
    committed = yaml.safe_load(Path("params.yaml").read_text())
    def value(key: str):
        section, name = key.split(".")
        return overrides.get(key, committed[section][name])
    shift = value("prepare.shift")
    return {"bn": value("model.bn_protocol"),
            "shift": "none" if shift == "none" else f"{shift}-{value('prepare.shift_severity')}"}


def ablation_prefix(sets: dict) -> str:
    """The name prefix of a cell's ablation experiments (``ablation`` for today's cell, committed params)."""
    cell = cell_of(sets)
    return "ablation" if cell == cell_of({}) and not sets else f"ablation-{cell['shift']}-{cell['bn']}"


#: The adapt run with every alignment weight at 0: source-only training plus target BatchNorm statistics.
WEIGHT_ZERO = {"adapt.global_family": "none", "adapt.lambda_adv_local": 0}


def ablation(seeds: list[int], jobs: int, no_run: bool, selftrain: bool = True, sets: dict | None = None,
             selftrain_families: tuple[str, ...] = FAMILIES + ("source_only",),
             families: tuple[str, ...] = FAMILIES) -> None:
    """The main table on one benchmark cell: every family with and without the local term, the weight-0
    run, AdaBN, source-only and oracle (and, with ``selftrain``, each self-trained beside its control).

    ``sets``: params overrides for every run (the cell: ``prepare.shift``, ``prepare.shift_severity``,
    ``model.bn_protocol``); rows of other cells already in reports/ablation.csv are kept.
    ``selftrain_families``: the families whose runs also self-train (the others run ``selftrain.iterations 0``,
    which leaves their adapted model unchanged and saves the two self-training stages); ``source_only`` in
    it adds one run per seed that self-trains the source-only model. ``families``: the global families run
    (the weight-0 run always is), so that a cut for time can run the default family's rows first.
    """
    sets = dict(sets or {})
    cell = cell_of(sets)
    prefix = ablation_prefix(sets)
    runs = {}
    for seed in seeds:  # seed-major: a queue cut short leaves whole seeds
        for family in ("none",) + tuple(families):
            for local in ((0,) if family == "none" else (0, 1)):
                overrides = {**sets, "adapt.global_family": family, "seed": seed}
                if family == "none" or not local:
                    overrides["adapt.lambda_adv_local"] = 0
                if not selftrain or family not in selftrain_families:
                    overrides["selftrain.iterations"] = 0
                runs[(family, local, seed)] = overrides
        if selftrain and "source_only" in selftrain_families:  # does self-training need alignment first?
            runs[("source_only", 0, seed)] = {**sets, "selftrain.start": "source_only", "seed": seed}
    names = {key: run_name(prefix, f"{key[0]}-local{key[1]}", key[2]) for key in runs}
    metrics = finished_experiments() if no_run else run_all({names[k]: v for k, v in runs.items()}, jobs)
    rows = []
    for (family, local, seed), name in names.items():
        if name in metrics and family != "source_only":
            rows.append(ablation_row(metrics[name], family, local, seed, "adapted", 0, cell))
    # source_only, AdaBN and oracle do not depend on the family: take them from each seed's advent run.
    for model in ("source_only", "adabn", "oracle"):
        for seed in seeds:
            result = metrics.get(names[("advent", 1, seed)])
            if result is not None and model in result:
                rows.append(ablation_row(result, model, 0, seed, model, 0, cell))
    if selftrain:
        for (family, local, seed), name in names.items():
            if name in metrics and family in selftrain_families + ("source_only",):
                rows.append(ablation_row(metrics[name], family, local, seed, "selftrained", 1, cell))
    path = Path("reports/ablation.csv")
    kept = [row for row in read_rows(path) if (row.get("shift") or "none", row.get("bn") or "learned")
            != (cell["shift"], cell["bn"])]
    write_csv(path, kept + rows)
    table = alignment_table([row for row in rows if not row["selftrain"]], FAMILIES)
    if selftrain:
        table += "\n\n" + selftrain_table(rows)
    out = Path("reports/ablation.md") if prefix == "ablation" else Path(f"reports/ablation_{cell['shift']}_{cell['bn']}.md")
    out.write_text(f"Cell: shift {cell['shift']}, bn {cell['bn']}; seeds {seeds}.\n\n" + table + "\n")
    print(table)


#: The local term's training statistics (dvclive, one mean per log interval) the diagnostics table reads.
LOCAL_LOGS = {"kept_source": "local_kept/local_main_source", "kept_target": "local_kept/local_main_target",
              "d_acc_source": "d_acc/local_main_source", "d_acc_target": "d_acc/local_main_target"}


def local_diagnostics(seeds: list[int], sets: dict | None = None) -> None:
    """Why the local term does or does not help, per family and seed of a cell's ablation runs with the local
    term on: on target dev, the share of local outputs the filter keeps and the precision of their
    pseudo-class (the evaluate stage's reports/eval/local_diagnostics.json, for the start and the adapted
    model); in training, the share kept per domain and D_l's accuracy per domain (the adapt stage's log: mean
    over the run's log intervals, and the last interval). Writes reports/local_diagnostics_<shift>_<bn>.{csv,md}.
    """
    sets = dict(sets or {})
    cell, prefix = cell_of(sets), ablation_prefix(sets)
    refs = experiment_refs()
    rows = []
    for family in FAMILIES:
        for seed in seeds:
            ref = refs.get(run_name(prefix, f"{family}-local1", seed))
            if ref is None:
                continue
            raw = output_file(ref, "reports/eval", "local_diagnostics.json")
            dev = json.loads(raw)["models"] if raw else {}
            row = {"family": family, "seed": seed, **cell}
            for model in ("source_only", "adapted"):
                row[f"dev_kept_{model}"] = dev.get(model, {}).get("share_kept", "")
                row[f"dev_precision_{model}"] = dev.get(model, {}).get("precision", "")
            for key, metric in LOCAL_LOGS.items():
                values = [v for v in logged_series(ref, "reports/train/adapted", metric) if v == v]
                row[f"train_{key}_mean"] = sum(values) / len(values) if values else ""
                row[f"train_{key}_last"] = values[-1] if values else ""
            rows.append(row)
    stem = Path(f"reports/local_diagnostics_{cell['shift']}_{cell['bn']}")
    write_csv(stem.with_suffix(".csv"), rows)
    stem.with_suffix(".md").write_text(diagnostics_table(rows, cell) + "\n")
    print(diagnostics_table(rows, cell))


def read_rows(path: Path) -> list[dict]:
    """reports/ablation.csv as written (strings); rows of files older than the bn/shift columns get
    today's cell (learned BatchNorm, no shift)."""
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row.setdefault("selftrain", "0")
        row.setdefault("control_val_miou", "")
        row.setdefault("control_dev_miou", "")
        row["bn"] = row.get("bn") or "learned"
        row["shift"] = row.get("shift") or "none"
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", help="a sweep file (YAML), 'ablation', or 'diagnostics' (the local term's, of a "
                                     "cell's ablation runs)")
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
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES, metavar="FAMILY",
                        help="ablation: the global families to run beside the weight-0 run (default: all)")
    parser.add_argument("--code-at", nargs="+", default=["HEAD"], metavar="COMMIT",
                        help="reuse experiments whose training/evaluation code equals one of these commits' "
                             "(default HEAD)")
    args = parser.parse_args()
    CODE_REF[:] = args.code_at
    sets = {}
    for item in args.set:
        key, _, value = item.partition("=")
        sets[key] = yaml.safe_load(value)
    if args.what == "diagnostics":
        local_diagnostics(args.seeds, sets)
    elif args.what == "ablation":
        ablation(args.seeds, args.jobs, args.no_run, selftrain=not args.no_selftrain, sets=sets,
                 selftrain_families=tuple(args.selftrain_families), families=tuple(args.families))
    else:
        sweep(Path(args.what), args.jobs, args.no_run)


if __name__ == "__main__":
    Path("dvc.yaml").is_file() or sys.exit("run from the repository root")
    main()
