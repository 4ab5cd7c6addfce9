"""The paper's main table on one benchmark cell (``python -m globallocal.experiments ablation``) and the local
term's diagnostics of its runs: which runs, under which names, and the rows of reports/ablation.csv.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from globallocal.alignment.global_alignment import ALIGNING_FAMILIES as FAMILIES
from globallocal.experiments.finished_runs import committed_file, experiment_refs, logged_series, output_file
from globallocal.experiments.queue import finished_experiments, run_all, run_name, write_csv
from globallocal.reporting import alignment_table, diagnostics_table, selftrain_table
from globallocal.reporting.ablation import ABLATION_FILE, COMMITTED_SETTING, backbone_name, cell_name, read_ablation


def ablation_row(result: dict, family: str, local: int, seed: int, model: str, selftrain: int,
                 cell: dict, probes: dict | None = None) -> dict:
    """One row of reports/ablation.csv: ``model``'s scores in ``result``; the control's for a self-trained one.

    ``cell``: the ``bn`` protocol, the benchmark ``shift`` cell (``none`` = today's benchmark), the ``stats``
    setting and the ``backbone`` of the run. ``probes``: the run's reports/probe_auc.json ``models`` (None:
    the run wrote none; the row's ``probe_auc`` is then empty).
    """
    auc = (probes or {}).get(model, {}).get("auc", "")
    row = {"family": family, "local": local, "selftrain": selftrain, "seed": seed,
           "val_miou": result[model]["miou"], "dev_miou": result["dev"][model]["miou"],
           "control_val_miou": "", "control_dev_miou": "", **cell, "probe_auc": auc}
    if selftrain:
        row["control_val_miou"] = result["selftrain_control"]["miou"]
        row["control_dev_miou"] = result["dev"]["selftrain_control"]["miou"]
    return row


def cell_of(overrides: dict) -> dict:
    """The ``bn``, ``shift``, ``stats`` and ``backbone`` columns of a run: its overrides on top of the
    committed params.yaml."""
    committed = yaml.safe_load(Path("params.yaml").read_text())
    def value(key: str):
        section, name = key.split(".")
        return overrides.get(key, committed[section][name])
    shift = value("prepare.shift")
    return {"bn": value("model.bn_protocol"),
            "shift": cell_name(shift, value("prepare.shift_severity")), "stats": value("adapt.bn_stats"),
            "backbone": backbone_name(value("model.arch"), value("model.backbone_weights"))}


def backbone_label(sets: dict) -> str:
    """``""`` for the committed backbone, else ``<arch>-<weights>`` (``efficientnet_lite0-imagenet``): a cell
    run with another backbone never shares experiment names or table files with the committed one's runs."""
    backbone = cell_of(sets)["backbone"]
    return "" if backbone == cell_of({})["backbone"] else backbone.replace("/", "-")


def ablation_prefix(sets: dict) -> str:
    """The name prefix of a cell's ablation experiments (``ablation`` for today's cell, committed params)."""
    cell = cell_of(sets)
    if cell == cell_of({}) and not sets:
        return "ablation"
    other = backbone_label(sets)
    return f"ablation-{cell['shift']}-{cell['bn']}" + (f"-{other}" if other else "")




def ablation_runs(seeds: list[int], sets: dict, selftrain: bool, selftrain_families: tuple[str, ...],
                  families: tuple[str, ...], family_sets: dict[str, dict] | None = None,
                  tag: str | None = None, selftrain_locals: tuple[int, ...] = (0, 1),
                  ) -> dict[tuple[str, int, int], tuple[str, dict]]:
    """{(family, local, seed): (experiment name, params overrides)} of the main table on one cell.

    A run that self-trains sets ``selftrain.iterations`` to the committed ``selftrain.max_iters`` (params.yaml
    keeps ``iterations: 0`` so that the default pipeline's numbers do not move) and is named apart (``-st``)
    from the adapt-only run of the same family, so neither takes the other's results. An adapt-only run asks
    nothing of the self-training params (its rows do not depend on them) unless the committed ones
    self-train. ``family_sets``: overrides for one family's runs only (e.g. its weights); those runs are
    named with ``tag``. The weight-0 run and the source-only self-training run do not depend on them and
    keep the cell's names. ``selftrain_locals``: which of a self-training family's runs self-train (``1``:
    only the one with the local term, the committed start; the other stays adapt-only).
    """
    family_sets = family_sets or {}
    if family_sets and not tag:
        raise ValueError("family_sets need a tag to name their runs apart from the committed weights' runs")
    committed = yaml.safe_load(Path("params.yaml").read_text())
    selftrain_iterations = committed["selftrain"]["max_iters"]
    prefix = ablation_prefix(sets)
    runs = {}
    for seed in seeds:  # seed-major: a queue cut short leaves whole seeds
        keys = [("none", 0)] + [(family, local) for family in families for local in (0, 1)]
        if selftrain and "source_only" in selftrain_families:  # does self-training need alignment first?
            keys.append(("source_only", 0))
        for family, local in keys:
            overrides = {**sets, "adapt.global_family": family, "seed": seed}
            if family == "source_only":
                overrides = {**sets, "selftrain.start": "source_only", "seed": seed}
            overrides.update(family_sets.get(family, {}))
            if family != "source_only" and not local:  # after the family's overrides (weight 0 is keyed local 0):
                overrides["adapt.lambda_adv_local"] = 0     # `local = 0` never aligns locally
            selftrains = selftrain and family in selftrain_families and (
                family == "source_only" or local in selftrain_locals)
            if selftrains:
                overrides["selftrain.iterations"] = selftrain_iterations
            elif committed["selftrain"]["iterations"]:  # adapt-only: skip the self-training the committed params run
                overrides["selftrain.iterations"] = 0
            name_prefix = f"{prefix}-{tag}" if family in family_sets else prefix
            variant = f"{family}-local{local}" + ("-st" if selftrains and family != "source_only" else "")
            runs[(family, local, seed)] = (run_name(name_prefix, variant, seed), overrides)
    return runs


def ablation(seeds: list[int], jobs: int, no_run: bool, selftrain: bool = True, sets: dict | None = None,
             selftrain_families: tuple[str, ...] = FAMILIES + ("source_only",),
             families: tuple[str, ...] = FAMILIES, family_sets: dict[str, dict] | None = None,
             tag: str | None = None, selftrain_locals: tuple[int, ...] = (0, 1)) -> None:
    """The main table on one benchmark cell: every family with and without the local term, the weight-0
    run, AdaBN, source-only and oracle (and, with ``selftrain``, each self-trained beside its control).

    ``sets``: params overrides for every run (the cell: ``prepare.shift``, ``prepare.shift_severity``,
    ``model.bn_protocol``); rows of other cells and settings already in reports/ablation.csv are kept.
    ``selftrain_families``: the families whose runs also self-train (the others are adapt-only runs, see
    ``ablation_runs``); ``source_only`` in it adds one run per seed that self-trains the source-only model.
    ``families``: the global families run (the weight-0 run always is), so that a cut for time can run the
    default family's rows first.
    ``family_sets`` / ``tag``: per-family overrides (their weights, say) and the name of that setting, the
    rows' ``setting`` column (``committed`` without them).
    ``selftrain_locals``: see ``ablation_runs``.
    """
    sets = dict(sets or {})
    setting = tag or COMMITTED_SETTING
    cell = {**cell_of(sets), "setting": setting}
    runs = ablation_runs(seeds, sets, selftrain, selftrain_families, families, family_sets, tag, selftrain_locals)
    names = {key: name for key, (name, _) in runs.items()}
    selftrained = {name for name, overrides in runs.values() if overrides.get("selftrain.iterations")}
    metrics = finished_experiments() if no_run else run_all(dict(runs.values()), jobs)
    refs = experiment_refs()
    wanted = set(names.values())
    probes = {name: probe_aucs(refs[name]) for name in metrics if name in refs and name in wanted}
    rows = []
    for (family, local, seed), name in names.items():
        if name in metrics and family != "source_only":
            rows.append(ablation_row(metrics[name], family, local, seed, "adapted", 0, cell, probes.get(name)))
    # source_only, AdaBN and oracle do not depend on the family: take them from each seed's weight-0 run.
    for model in ("source_only", "adabn", "oracle"):
        for seed in seeds:
            name = names[("none", 0, seed)]
            result = metrics.get(name)
            if result is not None and model in result:
                rows.append(ablation_row(result, model, 0, seed, model, 0, cell, probes.get(name)))
    if selftrain:
        for (family, local, seed), name in names.items():
            if name in metrics and name in selftrained and "selftrained" in metrics[name]:
                rows.append(ablation_row(metrics[name], family, local, seed, "selftrained", 1, cell,
                                         probes.get(name)))
    # A row this call did not score again stays, even of this cell: experiments lost with a machine (DVC's refs
    # are local) or seeds run in an earlier call keep their committed rows; a row scored again replaces its own.
    def cell_key(row: dict) -> tuple:
        return row["shift"], row["bn"], row["setting"], row["stats"], row["backbone"]

    def run_key(row: dict) -> tuple:
        return str(row["family"]), int(row["local"]), int(row["selftrain"]), int(row["seed"])
    here = cell_key(cell)
    scored = {run_key(row) for row in rows}
    earlier = [row for row in read_ablation(ABLATION_FILE) if cell_key(row) != here or run_key(row) not in scored]
    write_csv(ABLATION_FILE, earlier + rows)
    rows = [row for row in earlier if cell_key(row) == here] + rows
    table_seeds = sorted({int(row["seed"]) for row in rows})
    table = alignment_table([row for row in rows if not row["selftrain"]], FAMILIES)
    if any(row["selftrain"] for row in rows):  # this call's or kept from an earlier one
        table += "\n\n" + selftrain_table(rows)
    other = backbone_label(sets)
    out = Path("reports/ablation.md") if ablation_prefix(sets) == "ablation" and not tag else Path(
        f"reports/ablation_{cell['shift']}_{cell['bn']}" + (f"_{other}" if other else "")
        + (f"_{tag}" if tag else "") + ".md")
    header = f"Cell: shift {cell['shift']}, bn {cell['bn']}, setting {setting}; seeds {table_seeds}."
    if family_sets:
        overrides = (f"{family}: " + ", ".join(f"`{k}={v}`" for k, v in values.items())
                     for family, values in family_sets.items())
        header += " Per-family overrides: " + "; ".join(overrides) + "."
    out.write_text(header + "\n\n" + table + "\n")
    print(table)


def probe_aucs(ref: str) -> dict | None:
    """{model: {"auc": ...}} of an experiment's domain probe (reports/probe_auc.json); None before the probe."""
    raw = committed_file(ref, "reports/probe_auc.json")
    return json.loads(raw)["models"] if raw else None


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
            # the adapt-only run, or the run that also self-trained (the same adapt stage)
            ref = refs.get(run_name(prefix, f"{family}-local1", seed)) or refs.get(
                run_name(prefix, f"{family}-local1-st", seed))
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
