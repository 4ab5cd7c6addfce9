"""The GPU check: CUDA tests, paper-size step variants, embedded step and pipeline, in one JSON and one table.

Run it through ``benchmarks/gpu_check.sh`` (which picks the Python and sets PYTHONPATH). Parts, in order,
each in its own process with a time limit drawn from one overall budget (``--budget-s``, 470 s: the
check must end within 8 minutes on one H200-class GPU):

1. **tests**: ``pytest -m cuda`` on the test files holding the CUDA tests.
2. **paper step**: ``paper_variants.py``: the ADVENT-style fp32 reference and the configured step in
   fp32 / bf16 / fp16 (+ one switch off at a time), seconds per iteration and peak CUDA memory.
3. **embedded step**: ``step_speed.py --setting default``: the embedded default's adapt iteration.
4. **pipeline**: the embedded pipeline in a scratch copy of the project, stage by stage (``dvc repro
   -s <stage>`` with dvc, the stage commands one after another without it), seconds per stage.
5. **compile** (opt-in figure, with what time is left): the bf16 step with ``train.compile``.
6. **syncs**: ``sync_count.py``: host synchronisations per embedded adapt step (torch's sync debug
   mode), at log steps and between them, with the library lines that cause them.

A part whose packages are missing is recorded as skipped with the names; the others still run.
``--cpu-dry-run`` runs every part on the CPU at tiny sizes (nothing is measured, the figures mean
nothing) to show the check itself works; its JSON goes to a scratch folder unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
CUDA_TEST_FILES = ["tests/test_distributed.py", "tests/test_precision.py", "tests/test_device_path.py",
                   "tests/test_gpu_step.py"]
#: import name -> the pip requirement (pinned in requirements.txt) that provides it. Beyond torch/torchvision,
#: numpy, pandas, pillow, matplotlib, pytest and opencv, which a GPU image usually has.
EXTRA_PACKAGES = {"yaml": "PyYAML", "tqdm": "tqdm", "cityscapesscripts": "cityscapesScripts",
                  "ruamel.yaml": "ruamel.yaml", "dvclive": "dvclive", "dvc": "dvc"}
#: What each part imports beyond torch (the library needs the first three everywhere).
NEEDS = {
    "tests": ["pytest", "yaml", "tqdm", "cityscapesscripts"],
    "paper_step": ["yaml", "tqdm", "cityscapesscripts"],
    "embedded_step": ["yaml", "tqdm", "cityscapesscripts"],
    "pipeline": ["yaml", "tqdm", "cityscapesscripts", "dvclive", "matplotlib", "pandas", "PIL", "cv2"],
    "syncs": ["yaml", "tqdm", "cityscapesscripts"],
}
#: Seconds each part may take at most (the overall budget may cut them shorter).
CAPS = {"tests": 110, "paper_step": 200, "embedded_step": 60, "pipeline": 240, "compile": 150, "syncs": 40}
#: Seconds for the whole check: within 8 minutes with a margin for starting Python and writing files.
GPU_BUDGET_S = 470.0
DRY_RUN_BUDGET_S = 1800.0
#: The figures the goals are measured against (README: the committed 2-core CPU figures).
CPU_EMBEDDED_ADAPT_S = 0.173
CPU_PIPELINE_S = 154.0
#: Tiny pipeline params for the dry run (as tests/support/tiny_project.py's).
TINY = {
    "prepare": {"num_source": 6, "num_target_train": 6, "num_target_val": 3, "dev_size": 2,
                "source_size": [96, 53], "target_size": [96, 48]},
    "data": {"source_size": [64, 36], "target_size": [64, 32]},
    "pretrain": {"iterations": 3, "max_iters": 3},
    "adapt": {"iterations": 2, "max_iters": 2, "global_d_pool": 1},
    "oracle": {"iterations": 2, "max_iters": 2},
    "train": {"log_every": 1, "snapshot_every": 2},
    "evaluate": {"num_qualitative": 2},
}


def missing(modules: list[str]) -> list[str]:
    """The import names among ``modules`` that this Python cannot import."""

    def importable(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # a dotted name whose parent package is missing
            return False

    return [name for name in modules if not importable(name)]


class Budget:
    """One overall time limit shared by the parts; ``scale`` stretches the caps (a CPU dry run is slow)."""

    def __init__(self, seconds: float, scale: float = 1.0):
        self.end, self.scale = time.monotonic() + seconds, scale

    def limit(self, part: str, reserve: float = 0.0) -> float:
        """Seconds ``part`` may run: its cap, cut to what is left after ``reserve`` for later parts."""
        return max(0.0, min(CAPS[part] * self.scale, self.end - time.monotonic() - reserve * self.scale))


def run(cmd: list[str], timeout: float, cwd: Path = REPO, env: dict | None = None) -> tuple[int, float, str]:
    """(exit status, seconds, the output's last lines); status 124 when the time limit stopped it."""
    env = {**os.environ, **(env or {})}
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=max(timeout, 1))
        status, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as expired:
        status = 124
        output = (expired.stdout or b"").decode(errors="replace") if isinstance(expired.stdout, bytes) else (
            expired.stdout or "")
    return status, time.perf_counter() - start, "\n".join(output.strip().splitlines()[-15:])


def part_tests(budget: Budget, scratch: Path) -> dict:
    report = scratch / "pytest.xml"
    status, seconds, tail = run(
        [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", f"--junitxml={report}",
         *CUDA_TEST_FILES], budget.limit("tests", reserve=300))
    result = {"status": status, "seconds": round(seconds, 1)}
    if report.is_file():
        suite = ElementTree.parse(report).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
        result.update(counts, passed=counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"])
        result["failed"] = [case.get("name") for case in suite.iter("testcase")
                            if case.find("failure") is not None or case.find("error") is not None]
    if status not in (0, 5):  # 5: nothing collected
        result["output_tail"] = tail
    return result


def part_paper_step(budget: Budget, scratch: Path, dry_run: bool, only_compile: bool = False) -> dict:
    out = scratch / ("compile.json" if only_compile else "variants.json")
    cmd = [sys.executable, str(BENCH / "paper_variants.py"), "--out", str(out)]
    cmd += ["--only", "bf16 + torch.compile"] if only_compile else ["--skip", "bf16 + torch.compile"]
    if dry_run:
        cmd += ["--tiny", "--warmup", "0", "--iters", "1"]
    limit = budget.limit("compile") if only_compile else budget.limit("paper_step", reserve=200)
    status, seconds, tail = run(cmd, limit)
    result = json.loads(out.read_text()) if out.is_file() else {"variants": {}}
    result.update(status=status, seconds=round(seconds, 1))
    if status != 0:
        result["output_tail"] = tail  # a time-limited run keeps the variants it finished
    return result


def part_embedded_step(budget: Budget, scratch: Path, dry_run: bool) -> dict:
    out = scratch / "embedded.json"
    cmd = [sys.executable, str(BENCH / "step_speed.py"), "--setting", "default", "--out", str(out)]
    cmd += ["--iterations", "1", "--repeats", "1"] if dry_run else ["--iterations", "10", "--repeats", "3"]
    status, seconds, tail = run(cmd, budget.limit("embedded_step", reserve=150))
    result = {"status": status, "seconds": round(seconds, 1)}
    if out.is_file():
        (measured,) = json.loads(out.read_text()).values()
        result.update({key: measured[key] for key in ("device", "configured_s_per_iter", "reference_s_per_iter",
                                                      "speedup") if key in measured})
        result["peak_cuda_mib"] = measured.get("peak_cuda_mib")
    if status != 0:
        result["output_tail"] = tail
    return result


def part_syncs(budget: Budget, scratch: Path, dry_run: bool) -> dict:
    out = scratch / "syncs.json"
    cmd = [sys.executable, str(BENCH / "sync_count.py"), "--out", str(out)]
    cmd += ["--device", "cpu", "--steps", "4", "--log-every", "2"] if dry_run else []
    status, seconds, tail = run(cmd, budget.limit("syncs"))
    result = json.loads(out.read_text()) if out.is_file() else {}
    result.update(status=status, seconds=round(seconds, 1))
    if status != 0:
        result["output_tail"] = tail
    return result


def stage_commands() -> list[tuple[str, str]]:
    import yaml

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return [(name, stage["cmd"]) for name, stage in stages.items()]  # written in dependency order


def part_pipeline(budget: Budget, scratch: Path, dry_run: bool, no_dvc: bool = False) -> dict:
    import yaml

    root = scratch / "project"
    for name in ("pipeline", "src"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("dvc.yaml", ".gitignore", ".dvcignore", "reports/ablation.csv"):
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / name, root / name)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    if dry_run:
        for section, values in TINY.items():
            params[section].update(values)
        params["device"] = "cpu"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    use_dvc = not missing(["dvc"]) and not no_dvc
    env = {"PYTHONPATH": str(root / "src"), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    if use_dvc:
        status, _, tail = run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], 60, cwd=root, env=env)
        if status != 0:
            use_dvc = False
    result = {"runner": "dvc repro -s <stage>" if use_dvc else "stage commands, one after another (no dvc)",
              "device": "cpu" if dry_run else "cuda", "stages_s": {}}
    limit = budget.limit("pipeline", reserve=0)
    for name, cmd in stage_commands():
        left = limit - sum(result["stages_s"].values())
        command = ([sys.executable, "-m", "dvc", "repro", "-s", "-q", name] if use_dvc
                   else [sys.executable, *cmd.split()[1:]])  # "python pipeline/x.py ..." with this Python
        status, seconds, tail = run(command, left, cwd=root, env=env)
        result["stages_s"][name] = round(seconds, 1)
        if status != 0:
            result.update(status=status, failed_stage=name, output_tail=tail)
            break
    else:
        result["status"] = 0
        metrics = root / "reports/metrics.json"
        if metrics.is_file():
            result["metrics"] = json.loads(metrics.read_text())
    result["total_s"] = round(sum(result["stages_s"].values()), 1)
    return result


def goals(report: dict) -> dict:
    """Each goal of the issue with its measured value; None where nothing measured it (and in a dry run)."""
    variants = report.get("paper_step", {}).get("variants", {})
    reference = variants.get("reference (ADVENT-style fp32)", {})
    best = min((v for k, v in variants.items() if k.startswith("configured") and "s_per_iter" in v),
               key=lambda v: v["s_per_iter"], default=None)
    paper_speedup = reference["s_per_iter"] / best["s_per_iter"] if best and "s_per_iter" in reference else None
    memory = (best["peak_mib"] / reference["peak_mib"]
              if best and "peak_mib" in best and "peak_mib" in reference else None)
    embedded = report.get("embedded_step", {}).get("configured_s_per_iter")
    pipeline = report.get("pipeline", {})
    pipeline_s = pipeline.get("total_s") if pipeline.get("status") == 0 else None
    if report.get("dry_run"):
        paper_speedup = memory = embedded = pipeline_s = None
    return {
        "paper step >= 3x the fp32 reference": paper_speedup and round(paper_speedup, 2),
        "paper step peak memory <= 60% of the reference": memory and round(memory, 3),
        f"embedded adapt step >= 10x faster than the CPU's {CPU_EMBEDDED_ADAPT_S} s/it":
            embedded and round(CPU_EMBEDDED_ADAPT_S / embedded, 2),
        f"embedded pipeline <= 1/3 of the CPU's {CPU_PIPELINE_S:.0f} s": pipeline_s and round(
            pipeline_s / CPU_PIPELINE_S, 3),
    }


def table(report: dict) -> str:
    lines = [f"GPU check {report['date']} on {report['device']} (torch {report['torch']}, "
             f"{'CPU DRY RUN: figures mean nothing' if report['dry_run'] else 'measured'})"]
    tests = report.get("tests", {"skipped_part": "not run"})
    lines.append(f"tests -m cuda: {tests.get('passed', '?')} passed, "
                 f"{tests.get('failures', 0) + tests.get('errors', 0)}"
                 f" failed, {tests.get('skipped', '?')} skipped {tests.get('failed') or ''}".rstrip()
                 if "skipped_part" not in tests else f"tests: {tests['skipped_part']}")
    reference = report.get("paper_step", {}).get("variants", {}).get("reference (ADVENT-style fp32)", {})
    for part in ("paper_step", "compile"):
        for name, figures in report.get(part, {}).get("variants", {}).items():
            if "s_per_iter" not in figures:
                lines.append(f"  {name:34s} {figures.get('skipped', 'not run')}")
                continue
            ratio = reference.get("s_per_iter", float("nan")) / figures["s_per_iter"] if reference else float("nan")
            memory = figures.get("peak_mib", figures.get("peak_rss_mib"))
            lines.append(f"  {name:34s} {figures['s_per_iter']:8.4f} s/it  {ratio:5.2f}x  peak {memory} MiB")
    embedded = report.get("embedded_step", {})
    if "configured_s_per_iter" in embedded:
        lines.append(f"embedded adapt step: {embedded['configured_s_per_iter']:.4f} s/it on {embedded.get('device')}")
    pipeline = report.get("pipeline", {})
    if "stages_s" in pipeline:
        stages = ", ".join(f"{k} {v:.0f}" for k, v in pipeline["stages_s"].items())
        lines.append(f"pipeline ({pipeline['runner']}): {pipeline['total_s']:.0f} s: {stages}"
                     + ("" if pipeline.get("status") == 0 else f"  FAILED at {pipeline.get('failed_stage')}"))
    syncs = report.get("syncs", {})
    if syncs.get("mean_syncs_per_other_step") is not None:
        sources = ", ".join(f"{line} x{count:g}" for line, count in syncs.get("sources_per_other_step", {}).items())
        lines.append(f"host syncs per adapt step on {syncs['device']}: {syncs['mean_syncs_per_other_step']:g} between "
                     f"log steps ({sources or 'none'}), {syncs.get('mean_syncs_per_log_step')} at a log step")
    for part in ("tests", "paper_step", "embedded_step", "pipeline", "syncs"):
        if "skipped_part" in report.get(part, {}) and part != "tests":
            lines.append(f"{part}: {report[part]['skipped_part']}")
    lines.append("goals (measured value; None = not measured"
                 + (", as in every dry run):" if report["dry_run"] else "):"))
    lines += [f"  {goal}: {value}" for goal, value in report["goals"].items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-dry-run", action="store_true", help="every part on the CPU at tiny sizes")
    parser.add_argument("--out", type=Path, help="the JSON (default: reports/bench_gpu.json; a scratch file "
                        "for a dry run)")
    parser.add_argument("--budget-s", type=float, help="overall time limit in seconds (470; a dry run: 1800)")
    parser.add_argument("--parts", default="tests,paper_step,embedded_step,pipeline,syncs,compile",
                        help="comma-separated parts to run")
    parser.add_argument("--no-dvc", action="store_true", help="run the stage commands even where dvc is installed")
    args = parser.parse_args()
    if not args.cpu_dry_run and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device visible. On a machine without one, "
                         "benchmarks/gpu_check.sh --cpu-dry-run shows the check runs (figures mean nothing).")
    if args.budget_s is None:
        args.budget_s = DRY_RUN_BUDGET_S if args.cpu_dry_run else GPU_BUDGET_S
    # A dry run's CPU is 10-100x slower than the GPU: the caps stretch with it (nothing is measured).
    budget = Budget(args.budget_s, scale=DRY_RUN_BUDGET_S / GPU_BUDGET_S if args.cpu_dry_run else 1.0)
    scratch = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    out = args.out or (scratch / "bench_gpu_dry_run.json" if args.cpu_dry_run else REPO / "reports/bench_gpu.json")
    parts = args.parts.split(",")
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": "cpu (dry run)" if args.cpu_dry_run else torch.cuda.get_device_name(0),
        "dry_run": args.cpu_dry_run, "torch": torch.__version__, "cuda": torch.version.cuda,
        "python": platform.python_version(), "budget_s": args.budget_s,
        "missing_packages": [EXTRA_PACKAGES.get(name, name) for name in missing(list(EXTRA_PACKAGES))],
    }
    started = time.perf_counter()
    runners = {
        "tests": lambda: part_tests(budget, scratch),
        "paper_step": lambda: part_paper_step(budget, scratch, args.cpu_dry_run),
        "embedded_step": lambda: part_embedded_step(budget, scratch, args.cpu_dry_run),
        "pipeline": lambda: part_pipeline(budget, scratch, args.cpu_dry_run, args.no_dvc),
        "compile": lambda: part_paper_step(budget, scratch, args.cpu_dry_run, only_compile=True),
        "syncs": lambda: part_syncs(budget, scratch, args.cpu_dry_run),
    }
    for part in parts:
        lacking = missing(NEEDS.get(part, NEEDS["paper_step"]))
        if lacking:
            report[part] = {"skipped_part": "needs " + ", ".join(EXTRA_PACKAGES.get(n, n) for n in lacking)}
        elif part == "compile" and args.cpu_dry_run:
            report[part] = {"skipped_part": "not in a dry run (CPU compilation needs a C++ toolchain)"}
        elif budget.limit(part) < 20:
            report[part] = {"skipped_part": "no time left in the budget"}
        else:
            print(f"gpu_check: {part} ...", flush=True)
            report[part] = runners[part]()
        report["elapsed_s"] = round(time.perf_counter() - started, 1)
        report["goals"] = goals(report)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")  # after every part: a cut-short check keeps its figures
    print(table(report))
    print(f"gpu_check: wrote {out} ({report['elapsed_s']:.0f} s)")
    shutil.rmtree(scratch / "project", ignore_errors=True)


if __name__ == "__main__":
    main()
