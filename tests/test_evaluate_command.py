"""`python -m globallocal evaluate`: a file that is not a checkpoint, an empty one and one of another
architecture are told apart, each with advice that fits a file the user supplied (never to delete it);
arguments are checked before torch is imported; --size defaults to the size the checkpoint was trained at, and a
checkpoint of ours that does not record it is refused with the --size to pass, never scored at a guess."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from globallocal.__main__ import main
from globallocal.checkpoints import CheckpointDescription, save_checkpoint
from globallocal.data.labels import NUM_CLASSES
from globallocal.evaluation.scoring import load_any_checkpoint
from globallocal.models import build_model
from globallocal.training.loop import build_train_state
from support.configs import optim_config, train_config
from support.real_layouts import make_cityscapes

SPEC = {"arch": "mobilenetv3_small", "num_classes": NUM_CLASSES, "backbone_weights": None, "bn_protocol": "learned",
        "output_stride": 16}
USER_ADVICE = "pass a checkpoint written by this pipeline's training stages (models/*.pt)"


def save_ours(path, spec=SPEC, target_size=(192, 96), source="gta5"):
    torch.manual_seed(0)
    state = build_train_state(build_model(**spec), train_config(optim_config(1, 1)),
                              NUM_CLASSES)
    description = CheckpointDescription(target_size=target_size, source_size=(192, 108), source=source)
    save_checkpoint(path, state.model, spec, state.checkpoint_parts(), description=description)


def save_old(path):
    """A checkpoint as written before checkpoints described themselves: weights, spec, normalisation only."""
    save_ours(path)
    checkpoint = torch.load(path, weights_only=True)
    torch.save({key: checkpoint[key] for key in ("model", "optimizer", "iteration", "model_spec",
                                                 "input_normalization")}, path)


def refusal(checkpoint, tmp_path, capsys) -> str:
    """The command's error line for ``checkpoint``; it must advise as for a user's file."""
    with pytest.raises(SystemExit) as stopped:
        main(["evaluate", str(checkpoint), "--target-root", str(tmp_path), "--out", str(tmp_path / "out")])
    assert stopped.value.code == 2
    message = capsys.readouterr().err
    assert USER_ADVICE in message and "delete" not in message
    return message


def test_a_params_file_is_called_a_yaml_text_file(tmp_path, capsys):
    path = tmp_path / "params.yaml"
    path.write_text("seed: 0\ndata:\n  source: gta5\n")
    assert f"error: {path} is not a PyTorch checkpoint: it is a text file (YAML?);" in refusal(path, tmp_path, capsys)


def test_a_png_is_called_a_png_image(tmp_path, capsys):
    path = tmp_path / "qualitative.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)
    assert f"{path} is not a PyTorch checkpoint: it is a PNG image;" in refusal(path, tmp_path, capsys)


def test_an_empty_file_is_called_empty(tmp_path, capsys):
    path = tmp_path / "model.pth"
    path.write_bytes(b"")
    assert f"checkpoint {path} is empty (0 bytes): a copy or download that did not finish?" in refusal(
        path, tmp_path, capsys)


def test_a_cut_short_checkpoint_is_called_cut_short(tmp_path, capsys):
    save_ours(tmp_path / "whole.pt")
    path = tmp_path / "half.pt"
    path.write_bytes((tmp_path / "whole.pt").read_bytes()[:4096])
    assert f"checkpoint {path} is cut short" in refusal(path, tmp_path, capsys)


def test_a_state_dict_of_another_architecture_names_its_first_keys(tmp_path, capsys):
    path = tmp_path / "deeplabv3.pth"
    torch.save({"backbone.conv1.weight": torch.zeros(1), "backbone.bn1.weight": torch.zeros(1),
                "classifier.4.weight": torch.zeros(1), "classifier.4.bias": torch.zeros(1)}, path)
    message = refusal(path, tmp_path, capsys)
    assert (f"{path} holds a state dict of another architecture (keys backbone.conv1.weight, backbone.bn1.weight, "
            "classifier.4.weight, ...): neither a globallocal checkpoint") in message


def test_our_checkpoint_whose_weights_do_not_fit_its_network_is_not_to_be_deleted(tmp_path, capsys):
    path = tmp_path / "synthia16.pt"
    save_ours(path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["model_spec"] = {**SPEC, "num_classes": 16}
    torch.save(checkpoint, path)
    assert f"checkpoint {path}: its weights do not fit the network it names" in refusal(path, tmp_path, capsys)


#: Runs the command on a non-checkpoint; prints whether torch was imported and the exit status.
WITHOUT_TORCH = """
import sys
from globallocal.__main__ import main
try:
    main(sys.argv[1:])
except SystemExit as stop:
    print("torch" in sys.modules, stop.code)
"""


@pytest.mark.parametrize("arguments", [
    pytest.param(["params.yaml", "--target-root", "."], id="not a checkpoint"),
    pytest.param(["missing.pt", "--target-root", "."], id="missing checkpoint"),
    pytest.param(["params.yaml", "--target-root", ".", "--size", "1024by512"], id="bad size"),
    pytest.param(["CHECKPOINT", "--target-root", "no/such/root"], id="missing target root"),
])
def test_bad_arguments_are_reported_before_torch_is_imported(tmp_path, arguments):
    (tmp_path / "params.yaml").write_text("seed: 0\n")
    save_ours(tmp_path / "model.pt")
    arguments = [str(tmp_path / "model.pt") if a == "CHECKPOINT" else a for a in arguments]
    result = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, "evaluate", *arguments, "--out", "out"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.stdout.split() == ["False", "2"], result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1


def evaluate_args(checkpoint, root, out, *extra):
    return ["evaluate", str(checkpoint), "--target-root", str(root), "--out", str(out), "--device", "cpu",
            "--no-official-check", *extra]


def test_size_defaults_to_the_size_the_checkpoint_was_trained_at_and_says_so_first(tmp_path, capsys):
    root = make_cityscapes(tmp_path / "Cityscapes", train=1, val=1)
    save_ours(tmp_path / "model.pt", target_size=(40, 20))
    main(evaluate_args(tmp_path / "model.pt", root, tmp_path / "out"))
    assert json.loads((tmp_path / "out/metrics.json").read_text())["size"] == [40, 20]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "note: scored at 40x20, the size it was trained at (--size to change)"


def test_an_older_checkpoint_of_ours_without_its_size_is_refused_with_the_size_to_pass(tmp_path, capsys):
    root = make_cityscapes(tmp_path / "Cityscapes", train=1, val=1)
    save_old(tmp_path / "old.pt")
    assert load_any_checkpoint(tmp_path / "old.pt").size is None  # it still loads
    with pytest.raises(SystemExit) as stopped:
        main(evaluate_args(tmp_path / "old.pt", root, tmp_path / "out"))
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: checkpoint {tmp_path / 'old.pt'} does not record the size it was trained at")
    assert "pass --size WIDTHxHEIGHT, the data.target_size of the run that wrote it" in error
    assert not (tmp_path / "out/metrics.json").exists()  # nothing scored at a guess

    main(evaluate_args(tmp_path / "old.pt", root, tmp_path / "out", "--size", "40x20"))
    assert json.loads((tmp_path / "out/metrics.json").read_text())["size"] == [40, 20]
    assert "note:" not in capsys.readouterr().out  # an explicit size needs no note


def test_a_checkpoint_trained_on_synthia_reports_miou_16_and_13_without_being_told(tmp_path):
    root = make_cityscapes(tmp_path / "Cityscapes", train=1, val=1)
    save_ours(tmp_path / "synthia.pt", target_size=(40, 20), source="synthia")
    main(evaluate_args(tmp_path / "synthia.pt", root, tmp_path / "synthia"))
    save_ours(tmp_path / "gta5.pt", target_size=(40, 20), source="gta5")
    main(evaluate_args(tmp_path / "gta5.pt", root, tmp_path / "gta5"))
    synthia = json.loads((tmp_path / "synthia/metrics.json").read_text())
    gta5 = json.loads((tmp_path / "gta5/metrics.json").read_text())
    assert {"miou_16", "miou_13"} <= set(synthia) and not {"miou_16", "miou_13"} & set(gta5)
    assert synthia["miou"] == gta5["miou"]  # the same weights, the same 19-class score
