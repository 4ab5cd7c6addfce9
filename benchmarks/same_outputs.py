"""Are two checkouts' outputs bit-identical? Runs a shortened schedule of every stage (``dvc repro`` of a tiny
copy of each checkout: 6 pretrain, 4 adapt, 3 oracle and 3 self-training iterations on a tiny generated
benchmark) and prints the sha256 of every models/*.pt and reports/*.json, side by side.

    python benchmarks/same_outputs.py BEFORE_CHECKOUT AFTER_CHECKOUT [--scratch DIR]

A checkout is a folder holding dvc.yaml, params.yaml, pipeline/ and src/ (``git worktree add DIR COMMIT``).
Used to show that a restructuring commit moves no number (exit status 1 when any file differs).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

#: The shortened schedule: every stage runs, in seconds.
SHORT = {
    "prepare": {"num_source": 6, "num_target_train": 6, "num_target_val": 3, "dev_size": 2,
                "source_size": [96, 53], "target_size": [96, 48]},
    "data": {"source_size": [64, 36], "target_size": [64, 32]},
    "pretrain": {"iterations": 6, "max_iters": 6},
    "adapt": {"iterations": 4, "max_iters": 4, "global_d_pool": 1, "lambda_adv_local": 0.01},
    "oracle": {"iterations": 3, "max_iters": 3},
    "selftrain": {"iterations": 3, "max_iters": 3},
    "train": {"log_every": 1, "snapshot_every": 2},
    "evaluate": {"num_qualitative": 2},
}


def short_params(checkout: Path) -> dict:
    params = yaml.safe_load((checkout / "params.yaml").read_text())
    for section, values in SHORT.items():
        params[section].update(values)
    if "train_crop" in params["data"]:  # a crop must fit the shortened sizes
        params["data"]["train_crop"] = [64, 32]
    params["device"] = "cpu"
    return params


def reproduce(checkout: Path, project: Path) -> dict[str, str]:
    """{relative path: sha256} of the outputs of a tiny ``dvc repro`` of ``checkout`` in ``project``."""
    for name in ("dvc.yaml", "pipeline", "src", ".gitignore"):
        source = checkout / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(source, project / name)
    (project / "params.yaml").write_text(yaml.safe_dump(short_params(checkout), sort_keys=False))
    (project / "reports").mkdir()
    shutil.copy(checkout / "reports/ablation.csv", project / "reports/ablation.csv")
    env = dict(os.environ, PYTHONPATH=str(project / "src"),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    git = ["git", "-c", "user.name=same-outputs", "-c", "user.email=same-outputs@localhost"]
    for command in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"], ["git", "add", "-A"],
                    [*git, "commit", "-qm", "tiny"], [sys.executable, "-m", "dvc", "repro"]):
        done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"{checkout}: {' '.join(command)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    files = sorted([*project.glob("models/*.pt"), *project.glob("reports/*.json")])
    return {str(path.relative_to(project)): hashlib.sha256(path.read_bytes()).hexdigest()[:16] for path in files}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--scratch", type=Path, default=None, help="where the two tiny projects go (a temp dir)")
    args = parser.parse_args()
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="same-outputs-"))
    digests = []
    for label, checkout in (("before", args.before), ("after", args.after)):
        project = scratch / label
        shutil.rmtree(project, ignore_errors=True)
        project.mkdir(parents=True)
        digests.append(reproduce(checkout.resolve(), project))
    before, after = digests
    differ = 0
    for path in sorted(set(before) | set(after)):
        same = before.get(path) == after.get(path)
        differ += not same
        print(f"{'same  ' if same else 'DIFFER'} {before.get(path, '-'):16} {after.get(path, '-'):16} {path}")
    print(f"{len(set(before) | set(after)) - differ} same, {differ} differ")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
