"""Read a finished DVC experiment's outputs from its git ref and the local DVC cache, without applying it.

An experiment's ``dvc.lock`` (committed on ``refs/exps/...``) names each output's md5; a folder output's md5
points at a ``.dir`` listing in ``.dvc/cache/files/md5`` that names each file's md5. That is enough to read
any file the experiment produced, e.g. its dev local-filter diagnostics or its dvclive training logs, for a
table across experiments (``python -m globallocal.experiments diagnostics``).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import subprocess
from pathlib import Path

import yaml


@functools.cache
def _cache_root(cwd: str) -> Path:
    """The DVC cache's md5 folder as the repository's config sets it (``dvc cache dir``), else the default."""
    try:
        from dvc.repo import Repo  # the project's own dependency; imported here, the rest needs only git

        return Path(Repo(cwd).cache.local.path)
    except Exception:  # noqa: BLE001 - no DVC repository here: the default layout
        return Path(cwd) / ".dvc/cache/files/md5"


def experiment_refs() -> dict[str, str]:
    """{experiment name: its git ref} of every finished experiment (the name is the ref's last part)."""
    refs = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], capture_output=True,
                          text=True, check=True).stdout.split()
    return {ref.rsplit("/", 1)[1]: ref for ref in refs}


def _cached(md5: str) -> Path:
    return _cache_root(str(Path.cwd())) / md5[:2] / md5[2:]


def output_file(ref: str, out: str, relpath: str | None = None) -> bytes | None:
    """The bytes of output ``out`` of the experiment at ``ref`` (``relpath`` inside it when ``out`` is a
    folder); None when the lock does not name it or the cache no longer holds it."""
    lock = yaml.safe_load(subprocess.run(["git", "show", f"{ref}:dvc.lock"], capture_output=True, text=True,
                                         check=True).stdout)
    for stage in lock["stages"].values():
        for entry in stage.get("outs", []):
            if entry["path"] != out:
                continue
            md5 = entry["md5"]
            if relpath is not None:
                listing = _cached(md5)
                if not listing.is_file():
                    return None
                found = [item["md5"] for item in json.loads(listing.read_text()) if item["relpath"] == relpath]
                if not found:
                    return None
                md5 = found[0]
            path = _cached(md5)
            return path.read_bytes() if path.is_file() else None
    return None


def committed_file(ref: str, path: str) -> bytes | None:
    """The bytes of a file the experiment at ``ref`` committed to git (an output with ``cache: false``, such as
    reports/probe_auc.json); None when that commit has no such file."""
    shown = subprocess.run(["git", "show", f"{ref}:{path}"], capture_output=True)
    return shown.stdout if shown.returncode == 0 else None


def logged_series(ref: str, log_dir: str, metric: str) -> list[float]:
    """The values a dvclive log of the experiment recorded for ``metric`` (e.g. ``d_acc/local_main_target``),
    one per log interval; empty when it was never logged."""
    data = output_file(ref, log_dir, f"plots/metrics/{metric}.tsv")
    if data is None:
        return []
    rows = csv.DictReader(io.StringIO(data.decode()), delimiter="\t")
    name = metric.rsplit("/", 1)[1]
    return [float(row[name]) for row in rows]
