"""Presets: the paper settings as files, applied to params.yaml in one step or run as dvc exp run -S."""

from __future__ import annotations

import shutil

import pytest
import yaml

from globallocal import config
from globallocal.__main__ import main
from globallocal.config import presets
from globallocal.errors import UserError
from support.tiny_project import REPO

PRESETS = REPO / "presets"


@pytest.fixture
def params_file(tmp_path):
    path = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", path)
    return path


def applied(params_file, name, overrides=()):
    presets.apply_settings(params_file, presets.preset_settings(name, list(overrides), PRESETS), name)
    return config.load_params(params_file)


def test_the_three_presets_exist():
    assert presets.available_presets(PRESETS) == ["embedded", "paper_gta5", "paper_synthia"]


def test_paper_gta5_holds_the_papers_setting_as_effective_params(params_file):
    params = applied(params_file, "paper_gta5")
    params = config.parse(params)
    data, model = params.data, params.model
    assert (data.source, str(data.source_root), str(data.target_root)) == ("gta5", "data/GTA5", "data/Cityscapes")
    assert (data.source_size, data.target_size) == ((1280, 720), (1024, 512))
    assert (model.arch, model.bn_protocol, model.output_stride) == ("deeplabv2_resnet101", "reference", 8)
    assert params.train.batch_size == 1 and params.synthetic_config() is None
    for stage in ("pretrain", "adapt", "oracle"):
        optim = params.optim_config(stage)
        assert (optim.lr, optim.momentum, optim.weight_decay, optim.power) == (2.5e-4, 0.9, 5e-4, 0.9)
        assert (optim.iterations, optim.max_iters) == (120_000, 250_000)
        assert (optim.lr_d, optim.betas_d) == (1e-4, (0.9, 0.99))
    alignment = params.alignment_config()
    assert (alignment.global_family, alignment.local.window) == ("advent", 1)
    assert (alignment.lambda_adv_main, alignment.lambda_adv_aux) == (1e-3, 2e-4)


def test_paper_synthia_differs_from_gta5_only_in_the_source(params_file, tmp_path):
    gta5 = presets.flatten(presets.load_preset("paper_gta5", PRESETS))
    synthia = presets.flatten(presets.load_preset("paper_synthia", PRESETS))
    assert {k: v for k, v in synthia.items() if gta5[k] != v} == {
        "data.source": "synthia", "data.source_root": "data/SYNTHIA", "data.source_size": [1280, 760]}


def test_embedded_preset_is_the_committed_default(params_file):
    before = params_file.read_text()
    assert presets.apply_settings(params_file, presets.preset_settings("embedded", [], PRESETS), "embedded") == []
    assert params_file.read_text() == before


def test_applying_a_preset_keeps_comments_and_switching_back_restores_the_file(params_file):
    before = params_file.read_text()
    applied(params_file, "paper_gta5")
    text = params_file.read_text()
    assert "arch: deeplabv2_resnet101 # mobilenetv3_small | mobilenetv3_large | deeplabv2_resnet101 (paper)" in text
    assert "  source_size: [1280, 720]  # [width, height] the source is resized to" in text
    applied(params_file, "embedded")
    assert params_file.read_text() == before


def test_overrides_apply_after_the_preset(params_file):
    params = applied(params_file, "paper_gta5", ["data.source_root=/datasets/GTA5", "data.source_size=[64, 36]"])
    assert params["data"]["source_root"] == "/datasets/GTA5" and params["data"]["source_size"] == [64, 36]


def test_unknown_key_in_a_preset_is_refused_and_params_yaml_left_alone(params_file):
    before = params_file.read_text()
    with pytest.raises(UserError, match="'adapt.lambda_local'.*params.yaml does not have"):
        applied(params_file, "paper_gta5", ["adapt.lambda_local=0.1"])
    assert params_file.read_text() == before


def test_invalid_result_is_refused_before_writing(params_file):
    before = params_file.read_text()
    with pytest.raises(UserError, match="adapt.global_family"):
        applied(params_file, "paper_gta5", ["adapt.global_family=cycada"])
    assert params_file.read_text() == before


def test_unknown_preset_lists_the_available_ones():
    with pytest.raises(UserError, match="available presets: embedded, paper_gta5, paper_synthia"):
        presets.load_preset("paper_cityscapes", PRESETS)


def test_exp_run_passes_only_the_keys_that_differ_as_set_params():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    settings = presets.changed_settings(params, presets.preset_settings("paper_synthia", [], PRESETS))
    command = presets.exp_run_command(settings, ["-n", "synthia"])
    assert command[:3] == ["dvc", "exp", "run"] and command[-2:] == ["-n", "synthia"]
    pairs = dict(arg.split("=", 1) for arg in command[4:-2:2])
    assert pairs["data.source"] == "synthia" and pairs["data.source_size"] == "[1280,760]"
    assert pairs["model.backbone_weights"] == "weights/DeepLab_resnet_pretrained_imagenet.pth"
    assert "train.momentum" not in pairs  # the same in the default and the preset


def test_command_line_apply_is_one_switch(params_file, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    main(["preset", "apply", "paper_gta5", "--params", str(params_file)])
    assert "preset 'paper_gta5' applied" in capsys.readouterr().out
    assert yaml.safe_load(params_file.read_text())["model"]["arch"] == "deeplabv2_resnet101"


def test_command_line_exp_run_dry_run_prints_the_dvc_command(monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    main(["preset", "exp-run", "paper_gta5", "--dry-run", "--", "-n", "paper-gta5"])
    line = capsys.readouterr().out.strip()
    assert line.startswith("dvc exp run -S ") and line.endswith("-n paper-gta5")
    assert "-S model.arch=deeplabv2_resnet101" in line


def apply_command(params_file, capsys, *sets) -> list[str]:
    main(["preset", "apply", "paper_gta5", "--presets-dir", str(PRESETS), "--params", str(params_file),
          *(f"--set={assignment}" for assignment in sets)])
    return capsys.readouterr().out.splitlines()


def test_apply_prints_every_change_old_to_new(params_file, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    lines = apply_command(params_file, capsys, "data.source_root=/datasets/GTA5")
    assert lines[0] == f"{params_file}: preset 'paper_gta5' applied, 27 keys changed:"
    assert "  data.source_root: data/synthetic/gta5 -> /datasets/GTA5" in lines
    assert "  pretrain.iterations: 300 -> 120000" in lines
    assert "  data.train_crop: [192, 96] -> null" in lines  # the paper sizes train uncropped, as ADVENT
    assert "  adapt.bn_stats: reestimate -> mixed" in lines  # the reference code's statistics at paper size
    assert "  selftrain.bn_stats: reestimate -> mixed" in lines
    assert not any("reverts" in line for line in lines)  # a first apply undoes no --set


def test_re_applying_warns_about_each_earlier_set_it_reverts_and_gives_the_command_that_keeps_them(
        params_file, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    apply_command(params_file, capsys, "data.source_root=/datasets/GTA5", "pretrain.iterations=1000")
    lines = apply_command(params_file, capsys, "adapt.lr=0.001")
    assert lines[:4] == [f"{params_file}: preset 'paper_gta5' applied, 3 keys changed:",
                         "  data.source_root: /datasets/GTA5 -> data/GTA5",
                         "  pretrain.iterations: 1000 -> 120000",
                         "  adapt.lr: 0.00025 -> 0.001"]
    assert lines[4:7] == [
        "warning: data.source_root: /datasets/GTA5 -> data/GTA5 reverts a value no preset sets (an earlier --set or "
        "edit)",
        "warning: pretrain.iterations: 1000 -> 120000 reverts a value no preset sets (an earlier --set or edit)",
        "warning: to keep them: python -m globallocal preset apply paper_gta5 --set adapt.lr=0.001 "
        "--set data.source_root=/datasets/GTA5 --set pretrain.iterations=1000"]


def test_switching_between_presets_is_not_a_revert(params_file, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    apply_command(params_file, capsys)
    main(["preset", "apply", "paper_synthia", "--presets-dir", str(PRESETS), "--params", str(params_file)])
    assert not any("reverts" in line for line in capsys.readouterr().out.splitlines())


def test_after_applying_missing_weights_and_roots_and_a_long_cpu_schedule_are_warned(
        params_file, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    warnings = [line for line in apply_command(params_file, capsys) if line.startswith("warning: ")]
    assert [line.split("'")[1] for line in warnings[:3]] == ["model.backbone_weights", "data.source_root",
                                                             "data.target_root"]
    assert warnings[3].startswith("warning: pretrain.iterations is 120000 and the run would be on the CPU")
    for root in ("data/GTA5", "data/Cityscapes", "weights"):
        (tmp_path / root).mkdir(parents=True)
    (tmp_path / "weights/DeepLab_resnet_pretrained_imagenet.pth").write_bytes(b"x")
    warnings = [line for line in apply_command(params_file, capsys, "pretrain.iterations=5000",
                                               "adapt.iterations=5000", "oracle.iterations=5000")
                if line.startswith("warning: ")]
    assert warnings == []


def test_a_misspelt_set_key_is_blamed_on_the_set_with_the_key_meant(params_file, capsys):
    before = params_file.read_text()
    with pytest.raises(SystemExit):
        apply_command(params_file, capsys, "data.source_sise=[64, 36]")
    assert capsys.readouterr().err == (
        "error: --set data.source_sise=... sets 'data.source_sise', which params.yaml does not have, did you mean "
        "'data.source_size'?; only keys params.yaml has can be set (check the spelling against params.yaml)\n")
    assert params_file.read_text() == before
