"""Shared fixtures and markers. ``tests/`` mirrors the package (``alignment/``, ``data/``, ``models/``);
``e2e/`` holds the end-to-end tests (``dvc repro``, stage scripts in subprocesses), marked ``e2e`` here so
that ``pytest -m "not e2e"`` runs the fast half (test_distributed.py and reporting/test_figures_readable.py mark their
subprocess tests themselves). Helpers that tests import live in ``support/``."""

import copy
from pathlib import Path

import pytest
import torch
import yaml

from support.tiny_project import REPO

E2E_DIR = Path(__file__).parent / "e2e"
#: Intra-op threads of the test process. The unit tests' tensors are small: one thread does the same work
#: without two threads waiting on each other. Measured on the 2-core machine, busy with other jobs: the
#: fast half took 43 s on one thread against 428 s on two (as four test modules used to force at import,
#: for the whole session), with 40 s against 410 s of CPU time.
TEST_THREADS = 1

torch.set_num_threads(TEST_THREADS)


def pytest_collection_modifyitems(config, items):
    """Mark every test under e2e/ ``e2e``; leave ``slow`` tests out unless the -m expression names them."""
    for item in items:
        if E2E_DIR in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)
    if "slow" in config.getoption("markexpr"):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


@pytest.fixture(scope="session")
def _committed_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.fixture
def committed_params(_committed_params) -> dict:
    """The committed params.yaml as a dict (a fresh copy for each test to change)."""
    return copy.deepcopy(_committed_params)


@pytest.fixture(scope="session")
def uninterrupted_adapt_weights() -> dict:
    """Every weight after the tiny adapt run of ``support/tiny_runs.py`` ran all its iterations on plain
    loaders: what each resume and loader-path test must end bit-identical to. Computed once; read only."""
    from support.tiny_runs import uninterrupted_weights

    return uninterrupted_weights()
