"""adapt.bn_stats reestimate, end to end: the adapt stage's model is AdaBN (the adabn stage's re-estimation,
adabn.batch_size) applied to the model the same stage trains with bn_stats mixed; domain_specific keeps the
mixed run's weights and only its running statistics differ."""

import shutil
import sys

import pytest
import torch
import yaml

from support.tiny_project import copy_code, run, tiny_params


def python(args, cwd):
    return run([sys.executable, *args], cwd)


def adapted_with(root, bn_stats: str) -> dict:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["adapt"]["bn_stats"] = bn_stats
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = python(["pipeline/adapt.py"], root)
    shutil.copy(root / "models/adapted.pt", root / f"adapted_{bn_stats}.pt")
    return {"stdout": result.stdout, "checkpoint": torch.load(root / "models/adapted.pt", weights_only=True)}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("bn_stats")
    copy_code(root)
    params = tiny_params()
    params["adapt"].update(iterations=3, max_iters=3)
    params["adabn"]["batch_size"] = 2  # two batches of the 4 target train images (6 less 2 dev)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    python(["pipeline/prepare.py"], root)
    python(["pipeline/pretrain.py"], root)
    return root


def adabn_stage_on(project, checkpoint) -> dict:
    """The adabn stage's model when its input (models/source_only.pt) is ``checkpoint``."""
    shutil.copy(checkpoint, project / "models/source_only.pt")
    python(["pipeline/adabn.py"], project)
    return torch.load(project / "models/adabn.pt", weights_only=True)["model"]


def test_reestimate_is_adabn_on_the_mixed_model(project):
    mixed = adapted_with(project, "mixed")
    reestimated = adapted_with(project, "reestimate")
    assert "re-estimated on 2 target train batches" in reestimated["stdout"]
    expected = adabn_stage_on(project, project / "adapted_mixed.pt")
    changed = 0
    for key, value in reestimated["checkpoint"]["model"].items():
        assert torch.equal(value, expected[key]), key
        changed += not torch.equal(value, mixed["checkpoint"]["model"][key])
    assert changed > 0 and all(key.endswith(("running_mean", "running_var", "num_batches_tracked"))
                               for key, value in mixed["checkpoint"]["model"].items()
                               if not torch.equal(value, expected[key]))


def test_domain_specific_changes_running_statistics_only(project):
    mixed = torch.load(project / "adapted_mixed.pt", weights_only=True) if (project / "adapted_mixed.pt").exists() \
        else adapted_with(project, "mixed")["checkpoint"]
    specific = adapted_with(project, "domain_specific")["checkpoint"]
    statistics = ("running_mean", "running_var", "num_batches_tracked")
    differ = [key for key, value in mixed["model"].items() if not torch.equal(value, specific["model"][key])]
    assert differ and all(key.endswith(statistics) for key in differ)
    assert any(key.endswith("running_mean") for key in differ)
