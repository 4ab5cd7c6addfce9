"""Shared fixtures and markers. ``tests/`` mirrors the package (``alignment/``, ``data/``, ``models/``);
``e2e/`` holds the end-to-end tests (``dvc repro``, stage scripts in subprocesses), marked ``e2e`` here so
that ``pytest -m "not e2e"`` runs the fast half (test_distributed.py and reporting/test_figures_readable.py mark their subprocess tests themselves). Helpers that tests import live in ``support/``."""

import copy
from pathlib import Path

import pytest
import yaml

from support.tiny_project import REPO

E2E_DIR = Path(__file__).parent / "e2e"


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
