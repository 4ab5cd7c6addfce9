"""dvc.yaml: every stage that runs library code depends on the whole library (one rule, no hand-kept list)."""

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def stages():
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def test_every_stage_script_imports_the_library_and_depends_on_all_of_it():
    for name, stage in stages().items():
        script = (REPO / re.search(r"pipeline/\w+\.py", stage["cmd"]).group(0)).read_text()
        assert "from globallocal" in script, name
        assert "${lib}" in stage["deps"], f"stage {name} does not list the whole library"
        assert not [dep for dep in stage["deps"] if str(dep).startswith("${lib}/")], f"stage {name}: a partial list"


def test_the_library_variable_is_the_package_folder_and_caches_are_not_hashed():
    assert yaml.safe_load((REPO / "dvc.yaml").read_text())["vars"] == [{"lib": "src/globallocal"}]
    # imported by training.py, listed by no stage before
    assert (REPO / "src/globallocal/training/precision.py").is_file()
    assert "__pycache__/" in (REPO / ".dvcignore").read_text().splitlines()
