"""A tiny setting of the whole project (seconds per stage) and a subprocess runner, for end-to-end tests."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

#: The repository root.
REPO = Path(__file__).resolve().parents[2]
TINY = {
    "prepare": {"num_source": 6, "num_target_train": 6, "num_target_val": 3, "dev_size": 2,
                "source_size": [96, 53], "target_size": [96, 48]},
    "data": {"source_size": [64, 36], "target_size": [64, 32], "train_crop": [64, 32]},
    "pretrain": {"iterations": 3, "max_iters": 3},
    "adapt": {"iterations": 2, "max_iters": 2, "global_d_pool": 1},  # D_g needs a 32x32 map at 64x32
    "oracle": {"iterations": 2, "max_iters": 2},
    "selftrain": {"iterations": 2, "max_iters": 2},
    "train": {"log_every": 1, "snapshot_every": 2},
    "evaluate": {"num_qualitative": 2},
}


def tiny_params() -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in TINY.items():
        params[section].update(values)
    params["device"] = "cpu"
    return params


def copy_code(root: Path, names=("pipeline", "src")) -> None:
    """The repository's ``names`` (folders or files) copied into ``root``, without caches."""
    for name in names:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(source, root / name)


def copy_project(root: Path) -> None:
    """The files a stage needs (dvc.yaml, pipeline/, src/, .gitignore) copied into ``root``, with tiny params."""
    copy_code(root, ("dvc.yaml", "pipeline", "src", ".gitignore"))
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))


def run(cmd, cwd, check=True):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result
