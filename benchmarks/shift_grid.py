"""Measure the pre-registered shift grid and apply its selection rule (docs/shift_grid.md).

    .venv/bin/python benchmarks/shift_grid.py benchmarks/shift_grid.yaml --jobs 2
    .venv/bin/python benchmarks/shift_grid.py benchmarks/shift_grid.yaml --no-run   # tables only

Every cell is one pipeline run, with the pipeline's own stage scripts, in runs/shift_grid/<cell>/ (its
own params.yaml: the committed one with the cell's prepare.shift / prepare.shift_severity, the grid's
training seed and the weight-0 adapt overrides). pretrain and source_only read source images only,
which no shift changes, so the reference cell trains them and the other cells copy them. Each job is
single-threaded. A cell with a result.json for the same params is not run again. After a cell is
scored its generated data and predictions are deleted (metrics, logs and timings stay).

Writes reports/sweeps/<name>.{csv,md,png}: per cell, dev and val mIoU of source-only, the weight-0
adapt run (baseline) and the oracle, headroom = oracle dev - baseline dev, eligibility and the selected
cell. Only dev numbers enter the selection (globallocal.experiments.shift_grid).
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from globallocal.experiments.shift_grid import CellResult, SelectionRule, parse_cell, select_cell

REPO = Path(__file__).resolve().parent.parent
WORK_DIR = REPO / "runs"
OUT_DIR = REPO / "reports" / "sweeps"
ENV = dict(os.environ, PYTHONPATH=f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
#: (name, script, arguments) in pipeline order; the first two are shared from the reference cell.
SHARED = [("pretrain", "pretrain.py", []), ("source_only", "adapt.py", ["--source-only"])]
SHARED_MODELS = ("models/pretrain.pt", "models/source_only.pt")
MODELS = ("source_only", "adapted", "oracle")
#: Bulky outputs removed once a cell is scored.
SCRATCH = ("data", "predictions", "snapshots")


def cell_params(base: dict, spec: dict, cell: str) -> dict:
    """The committed params with the cell's shift, the grid's seed and the weight-0 adapt overrides."""
    params = copy.deepcopy(base)
    name, severity = parse_cell(cell)
    params["prepare"]["shift"], params["prepare"]["shift_severity"] = name, severity
    params["seed"] = spec["seed"]
    for key, value in spec["baseline_overrides"].items():
        section, field = key.split(".")
        params[section][field] = value
    return params


def run_script(cell_dir: Path, script: str, args: list[str], log) -> float:
    """One stage script in cell_dir; its output goes to the cell's log. Returns wall seconds."""
    started = time.perf_counter()
    log.write(f"\n=== {script} {' '.join(args)}\n")
    log.flush()
    done = subprocess.run([sys.executable, str(REPO / "pipeline" / script), *args], cwd=cell_dir, env=ENV,
                          stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(f"{cell_dir.name}: {script} {' '.join(args)} failed (see {cell_dir / 'log.txt'})")
    return time.perf_counter() - started


class Grid:
    """Runs the cells; the reference cell's shared models are handed over through an Event."""

    def __init__(self, spec: dict, base_params: dict, work_dir: Path) -> None:
        self.spec, self.base_params, self.work_dir = spec, base_params, work_dir
        self.reference = spec["reference"]
        self.shared_ready = threading.Event()
        self.shared_failed = False

    def result_path(self, cell: str) -> Path:
        return self.work_dir / cell / "result.json"

    def finished(self, cell: str) -> dict | None:
        path = self.result_path(cell)
        if not path.is_file():
            return None
        result = json.loads(path.read_text())
        return result if result["params"] == cell_params(self.base_params, self.spec, cell) else None

    def run(self, cell: str) -> dict:
        previous = self.finished(cell)
        if previous is not None:
            if cell == self.reference:
                self.shared_ready.set()
            return previous
        try:
            return self._run(cell)
        except BaseException:
            if cell == self.reference:
                self.shared_failed = True
                self.shared_ready.set()
            raise

    def _run(self, cell: str) -> dict:
        cell_dir = self.work_dir / cell
        shutil.rmtree(cell_dir, ignore_errors=True)
        cell_dir.mkdir(parents=True)
        params = cell_params(self.base_params, self.spec, cell)
        (cell_dir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        timings = {}
        with (cell_dir / "log.txt").open("w") as log:
            timings["prepare"] = run_script(cell_dir, "prepare.py", [], log)
            if cell == self.reference:
                for name, script, args in SHARED:
                    timings[name] = run_script(cell_dir, script, args, log)
                self.shared_ready.set()
            timings["oracle"] = run_script(cell_dir, "oracle.py", [], log)
            if cell != self.reference:
                self.shared_ready.wait()
                if self.shared_failed:
                    raise RuntimeError(f"{cell}: the reference cell failed, so there are no shared models")
                for model in SHARED_MODELS:
                    (cell_dir / model).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(self.work_dir / self.reference / model, cell_dir / model)
            timings["adapt"] = run_script(cell_dir, "adapt.py", [], log)
            timings["evaluate"] = run_script(cell_dir, "evaluate.py", [], log)
        metrics = json.loads((cell_dir / "reports" / "metrics.json").read_text())
        result = {"cell": cell, "params": params, "timings_s": timings, "metrics": metrics}
        self.result_path(cell).write_text(json.dumps(result, indent=1))
        for scratch in SCRATCH:
            shutil.rmtree(cell_dir / scratch, ignore_errors=True)
        print(f"{cell}: done in {sum(timings.values()) / 60:.1f} min", flush=True)
        return result


def table_rows(spec: dict, results: dict[str, dict]) -> tuple[list[dict], str | None]:
    """One row per grid cell (reference first), with the selection's verdict; and the selected cell."""
    rule = SelectionRule(**{key: spec["rule"][key] for key in
                            ("min_gap", "min_baseline_dev", "max_prepare_ratio", "tie_margin")})
    cells = [spec["reference"], *spec["cells"]]
    measured = []
    for cell in cells:
        if cell in results:
            dev = results[cell]["metrics"]["dev"]
            measured.append(CellResult(cell, dev["source_only"]["miou"], dev["adapted"]["miou"],
                                       dev["oracle"]["miou"], results[cell]["timings_s"]["prepare"]))
    selected, reasons = select_cell(measured, rule, spec["reference"], tuple(spec["stress_tests"])) \
        if spec["reference"] in results else (None, {})
    rows = []
    for cell in cells:
        row = {"cell": cell}
        if cell not in results:
            rows.append({**row, "status": "not measured"})
            continue
        metrics = results[cell]["metrics"]
        for model, label in zip(MODELS, ("source_only", "baseline", "oracle")):
            row[f"{label}_dev"] = metrics["dev"][model]["miou"]
            row[f"{label}_val"] = metrics[model]["miou"]
        row["headroom_dev"] = round(row["oracle_dev"] - row["baseline_dev"], 2)
        row["gap_dev"] = round(row["oracle_dev"] - row["source_only_dev"], 2)
        row["headroom_val"] = round(row["oracle_val"] - row["baseline_val"], 2)
        row["prepare_s"] = round(results[cell]["timings_s"]["prepare"], 1)
        row["status"] = "selected" if cell == selected else (reasons.get(cell) or "eligible")
        rows.append(row)
    return rows, selected


COLUMNS = ["cell", "source_only_dev", "baseline_dev", "oracle_dev", "headroom_dev", "gap_dev",
           "source_only_val", "baseline_val", "oracle_val", "headroom_val", "prepare_s", "status"]


def write_outputs(name: str, rows: list[dict], selected: str | None, spec: dict) -> str:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with (OUT_DIR / f"{name}.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, restval="")
        writer.writeheader()
        writer.writerows(rows)
    header = ("| cell | source-only dev | baseline dev | oracle dev | **headroom dev** | gap dev | "
              "source-only val | baseline val | oracle val | headroom val | prepare s | status |")
    lines = [header, "|---|" + "---:|" * 10 + "---|"]
    for row in rows:
        values = [f"{row[c]:.2f}" if isinstance(row.get(c), float) and c != "prepare_s" else str(row.get(c, ""))
                  for c in COLUMNS]
        if row["cell"] == selected:
            values[0] = f"**{values[0]}**"
        lines.append("| " + " | ".join(values) + " |")
    not_measured = [row["cell"] for row in rows if row["status"] == "not measured"]
    lines += [
        "",
        f"Training seed {spec['seed']}, one run per cell. baseline = adapt with every alignment weight at 0 "
        f"({', '.join(f'{k}={v}' for k, v in spec['baseline_overrides'].items())}): source-only training "
        "plus target BatchNorm statistics. headroom = oracle - baseline; gap = oracle - source-only. "
        "The rule (benchmarks/shift_grid.yaml) reads dev only; val is shown, never used.",
        "",
        f"Selected cell: **{selected}**." if selected else "Selected cell: none (no eligible cell measured).",
    ]
    if not_measured:
        lines.append(f"Not measured (cut for time; docs/shift_grid.md says which and why): {', '.join(not_measured)}.")
    table = "\n".join(lines)
    (OUT_DIR / f"{name}.md").write_text(table + "\n")
    plot(rows, selected, OUT_DIR / f"{name}.png", name)
    return table


def plot(rows: list[dict], selected: str | None, path: Path, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [row for row in rows if row["status"] != "not measured"]
    if not measured:
        return
    cells = [row["cell"] for row in measured]
    positions = range(len(cells))
    figure, axis = plt.subplots(figsize=(7, 0.35 * len(cells) + 1.2))
    colours = ["tab:red" if cell == selected else "tab:blue" for cell in cells]
    axis.barh(positions, [row["headroom_dev"] for row in measured], color=colours, label="headroom (oracle - baseline)")
    axis.scatter([row["gap_dev"] for row in measured], positions, color="black", marker="|", s=120,
                 label="gap (oracle - source-only)", zorder=3)
    axis.set_yticks(list(positions), cells)
    axis.invert_yaxis()
    axis.set_xlabel("dev mIoU points")
    axis.set_title(f"{name}: dev headroom per cell (seed 0); selected in red")
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", type=Path, help="the grid file, e.g. benchmarks/shift_grid.yaml")
    parser.add_argument("--jobs", type=int, default=2, help="cells run side by side, one thread each")
    parser.add_argument("--no-run", action="store_true", help="only tabulate the cells already measured")
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR, help="where the cells' runs live")
    parser.add_argument("--cells", nargs="+", metavar="CELL",
                        help="run only these grid cells, in this order (after the reference); default: the "
                             "grid file's order. The tables always list every cell of the grid")
    args = parser.parse_args()
    spec = yaml.safe_load(args.spec.read_text())
    for cell in spec["cells"]:
        parse_cell(cell)
    base_params = yaml.safe_load((REPO / "params.yaml").read_text())
    grid = Grid(spec, base_params, args.work_dir / spec["name"])
    cells = [spec["reference"], *spec["cells"]]
    if args.cells and not set(args.cells) <= set(spec["cells"]):
        sys.exit(f"--cells: not in {args.spec}: {', '.join(sorted(set(args.cells) - set(spec['cells'])))}")
    to_run = [spec["reference"], *args.cells] if args.cells else cells
    if args.no_run:
        results = {cell: grid.finished(cell) for cell in cells}
    else:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = {cell: pool.submit(grid.run, cell) for cell in to_run}
        results = {}
        for cell, future in futures.items():
            try:
                results[cell] = future.result()
            except Exception as error:  # one failed cell must not lose the others' numbers
                print(f"{cell}: {error}", file=sys.stderr)
        print(f"grid done in {(time.perf_counter() - started) / 60:.1f} min", flush=True)
        results |= {cell: grid.finished(cell) for cell in cells if cell not in results}
    results = {cell: result for cell, result in results.items() if result is not None}
    rows, selected = table_rows(spec, results)
    print(write_outputs(spec["name"], rows, selected, spec))


if __name__ == "__main__":
    main()
