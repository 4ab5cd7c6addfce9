"""The command line: --version, defaults in help, one-line preset descriptions, `preset show`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import globallocal
from globallocal.__main__ import main

REPO = Path(__file__).resolve().parents[1]
PRESETS = REPO / "presets"


def output_of(argv, capsys) -> str:
    try:
        main(argv)
    except SystemExit as stop:
        assert stop.code in (0, None)
    return capsys.readouterr().out


def test_version_prints_the_package_version(capsys):
    assert output_of(["--version"], capsys) == f"globallocal {globallocal.__version__}\n"


def test_evaluate_help_shows_the_defaults_that_have_a_value(capsys):
    text = " ".join(output_of(["evaluate", "--help"], capsys).split())
    assert "the Cityscapes split to score (default: val)" in text
    assert "auto | cpu | cuda | cuda:N (default: auto)" in text
    assert "(default: None)" not in text and "(default: False)" not in text


def test_preset_list_gives_each_preset_a_one_line_description(capsys):
    lines = output_of(["preset", "list", "--presets-dir", str(PRESETS)], capsys).splitlines()
    assert [line.split()[0] for line in lines] == ["embedded", "paper_gta5", "paper_synthia"]
    assert lines[1] == ("paper_gta5     GTA5 -> Cityscapes as in the paper: DeepLab-v2 ResNet-101, "
                        "1280x720 -> 1024x512, 120k iterations.")


@pytest.fixture
def params_file(tmp_path):
    path = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", path)
    return path


def test_preset_show_lists_what_would_change_and_writes_nothing(params_file, capsys):
    before = params_file.read_text()
    out = output_of(["preset", "show", "paper_gta5", "--presets-dir", str(PRESETS), "--params", str(params_file),
                     "--set", "seed=3"], capsys)
    lines = out.splitlines()
    assert lines[0].startswith("preset 'paper_gta5' would change ") and lines[0].endswith(f"in {params_file}:")
    assert "  data.target_size: [192, 96] -> [1024, 512]" in lines
    assert "  model.arch: mobilenetv3_small -> deeplabv2_resnet101" in lines
    assert "  model.backbone_weights: null -> weights/DeepLab_resnet_pretrained_imagenet.pth" in lines
    assert "  seed: 0 -> 3" in lines  # --set is shown too
    assert not any(line.startswith("  data.source: ") for line in lines)  # gta5 already: unchanged
    assert params_file.read_text() == before


def test_preset_show_of_the_committed_default_changes_nothing(params_file, capsys):
    out = output_of(["preset", "show", "embedded", "--presets-dir", str(PRESETS), "--params", str(params_file)],
                    capsys)
    assert out.startswith("preset 'embedded' would change 0 of its ") and len(out.splitlines()) == 1
