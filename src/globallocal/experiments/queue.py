"""The DVC experiment queue behind ``python -m globallocal.experiments``: name runs, queue the ones without
results, run the queue, and read back every finished experiment's metrics and params.

A finished experiment is reused under its name only when its training and evaluation code is the current
commit's (``CODE_PATHS``, ``--code-at``) and it ran the params the run asks for (``params_mismatch``); a
`dvc repro` in the workspace blocks queueing (``check_no_repro_running``).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

DVC = [sys.executable, "-m", "dvc"]
#: Stage commands call `python`: make it this interpreter; one thread per job (see the docstring). A queued
#: experiment runs in its own copy of the repository (.dvc/tmp/exps/tmp...): the relative ``src`` first on
#: PYTHONPATH makes its stages import that copy's library, not the workspace's through the editable install
#: (without it, editing src/ while a queue runs changes experiments already queued).
ENV = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           PYTHONPATH=os.pathsep.join(filter(None, ("src", os.environ.get("PYTHONPATH")))),
           OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
#: Set on every queued experiment: one torch thread per job, as a param, so that DVC's run cache keys the job's
#: stages apart from a default `dvc repro`'s (a CPU run's numbers depend on the thread count).
JOB_PARAMS = {"train.cpu_threads": 1}
METRICS_FILE = "reports/metrics.json"
#: Target dev mIoU; experiments of older commits hold it under "dev" in METRICS_FILE instead.
METRICS_DEV_FILE = "reports/metrics_dev.json"
#: The code an experiment's metrics depend on besides its params: everything the stages up to
#: `evaluate` run (the report's drawing code does not change a number).
#: The runner's own files are excluded under today's paths (the experiments/ package) and under those they had
#: before the package layout (so experiments of older commits still compare with ``--code-at``).
CODE_PATHS = ("src", "pipeline", ":(exclude)src/globallocal/reporting", ":(exclude)src/globallocal/experiments",
              ":(exclude)src/globallocal/experiments.py", ":(exclude)src/globallocal/experiment_queue.py",
              ":(exclude)src/globallocal/main_table.py", ":(exclude)src/globallocal/experiment_files.py",
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
                    params = ((data.get("params") or {}).get("params.yaml") or {}).get("data")
                    found[name] = {**metrics, "_commit": baseline[:7], "_params": params}
    return found


def params_mismatch(recorded: dict | None, overrides: dict) -> list[str]:
    """``key: recorded -> wanted`` for each override a finished experiment's params.yaml does not hold.

    ``recorded``: the experiment's params.yaml as a nested dict (None: not known, nothing to compare);
    ``overrides``: the flat ``section.key`` overrides a run asks for.
    """
    if recorded is None:
        return []
    missing = object()
    found = []
    for key, wanted in overrides.items():
        value = recorded
        for part in key.split("."):
            value = value.get(part, missing) if isinstance(value, dict) else missing
        if value is missing or value != wanted:
            found.append(f"{key}: {'(absent)' if value is missing else repr(value)} -> {wanted!r}")
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
    for name, overrides in runs.items():  # a finished experiment is reused under its name only if it ran these params
        differs = params_mismatch(done.get(name, {}).get("_params"), overrides)
        if differs:
            sys.exit(f"experiment {name} exists with other params ({'; '.join(differs)}): its results are not this "
                     f"run's. Remove it (`dvc exp remove {name}`) or give the run another name (ablation --tag)")
    missing = [name for name in runs if name not in done and name not in _queued_or_running()]
    for name in missing:
        overrides = {**JOB_PARAMS, **runs[name]}
        sets = [flag for key, value in overrides.items() for flag in ("-S", f"{key}={json.dumps(value)}")]
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
