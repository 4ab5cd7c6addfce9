"""Scoring any checkpoint: ours, and ADVENT-format DeepLab-v2 state dicts with their key names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from globallocal.__main__ import main
from globallocal.checkpoints import CheckpointDescription, save_checkpoint
from globallocal.data.labels import NUM_CLASSES, SYNTHIA_16_TRAIN_IDS
from globallocal.errors import UserError
from globallocal.evaluation import scoring
from globallocal.evaluation.scoring import EvaluateOptions, MultiScaleFlip, score_checkpoint
from globallocal.models import build_model
from support.real_layouts import CITYSCAPES_SIZE, make_cityscapes

RESNET101_BLOCKS = (3, 4, 23, 3)
BN_TENSORS = ("weight", "bias", "running_mean", "running_var")


def advent_key_names(multi_level: bool = True) -> list[str]:
    """ADVENT's ResNetMulti parameter names in definition order (valeoai/ADVENT advent/model/deeplabv2.py),
    BatchNorm counters left out (listed separately)."""
    names = ["conv1.weight", *(f"bn1.{t}" for t in BN_TENSORS)]
    for layer, blocks in enumerate(RESNET101_BLOCKS, start=1):
        for block in range(blocks):
            prefix = f"layer{layer}.{block}"
            for index in (1, 2, 3):
                names += [f"{prefix}.conv{index}.weight", *(f"{prefix}.bn{index}.{t}" for t in BN_TENSORS)]
            if block == 0:
                names += [f"{prefix}.downsample.0.weight", *(f"{prefix}.downsample.1.{t}" for t in BN_TENSORS)]
    for classifier in ("layer5", "layer6") if multi_level else ("layer6",):
        for branch in range(4):
            names += [f"{classifier}.conv2d_list.{branch}.weight", f"{classifier}.conv2d_list.{branch}.bias"]
    return names


def bn_counters() -> list[str]:
    modules = ["bn1"] + [f"layer{layer}.{block}.bn{index}" for layer, blocks in enumerate(RESNET101_BLOCKS, 1)
                         for block in range(blocks) for index in (1, 2, 3)]
    modules += [f"layer{layer}.0.downsample.1" for layer in range(1, 5)]
    return [f"{module}.num_batches_tracked" for module in modules]


@pytest.fixture(scope="module")
def deeplab():
    torch.manual_seed(0)
    model = build_model("deeplabv2_resnet101", NUM_CLASSES, bn_protocol="frozen")
    # Heads biased towards a few classes, so predictions differ between pixels and classes.
    with torch.no_grad():
        model.main_head.branches[0].bias.copy_(torch.linspace(-1, 1, NUM_CLASSES))
    return model


def as_advent(model) -> dict:
    """The model's tensors under ADVENT's names, with their BatchNorm counters."""
    state = dict(zip(advent_key_names(), (t.clone() for t in model.state_dict().values()), strict=True))
    state.update({name: torch.tensor(0) for name in bn_counters()})
    return state


@pytest.fixture(scope="module")
def target_root(tmp_path_factory):
    return make_cityscapes(tmp_path_factory.mktemp("Cityscapes"), train=1, val=3)


def options(target_root, out_dir, **changes) -> EvaluateOptions:
    return EvaluateOptions(target_root=target_root, split="val", out_dir=out_dir, size=CITYSCAPES_SIZE,
                           device="cpu", official_check=False, **changes)


def save_ours(model, path, spec):
    save_checkpoint(path, model, spec, description=CheckpointDescription(
        target_size=CITYSCAPES_SIZE, source_size=CITYSCAPES_SIZE, source="gta5"))


def test_an_advent_state_dict_scores_exactly_like_the_same_weights_in_our_checkpoint(deeplab, target_root, tmp_path):
    ours = tmp_path / "ours.pt"
    save_ours(deeplab, ours, {"arch": "deeplabv2_resnet101", "num_classes": NUM_CLASSES,
                              "backbone_weights": None, "bn_protocol": "frozen", "output_stride": 8})
    advent = tmp_path / "GTA2Cityscapes_advent.pth"
    torch.save(as_advent(deeplab), advent)
    ours_metrics = score_checkpoint(ours, options(target_root, tmp_path / "ours"), progress=False)
    advent_metrics = score_checkpoint(advent, options(target_root, tmp_path / "advent"), progress=False)
    assert advent_metrics["miou"] == ours_metrics["miou"] and ours_metrics["num_images"] == 3
    np.testing.assert_array_equal(np.load(tmp_path / "advent/confusion.npy"), np.load(tmp_path / "ours/confusion.npy"))
    assert len(list((tmp_path / "advent/labelIds").iterdir())) == 3
    assert len(list((tmp_path / "advent/color").iterdir())) == 3


def test_a_16_class_synthia_advent_model_never_predicts_the_3_missing_classes(deeplab, target_root, tmp_path):
    state = as_advent(deeplab)
    for classifier in ("layer5", "layer6"):
        for branch in range(4):
            for tensor in ("weight", "bias"):
                key = f"{classifier}.conv2d_list.{branch}.{tensor}"
                state[key] = state[key][: len(SYNTHIA_16_TRAIN_IDS)].clone()
    state["layer6.conv2d_list.0.bias"][:] = -5.0
    state["layer6.conv2d_list.0.bias"][15] = 5.0  # their 16th class, bicycle
    torch.save(state, tmp_path / "SYNTHIA2Cityscapes.pth")
    metrics = score_checkpoint(tmp_path / "SYNTHIA2Cityscapes.pth", options(target_root, tmp_path / "out"),
                               progress=False)
    assert {"miou_16", "miou_13"} <= set(metrics)
    confusion = np.load(tmp_path / "out/confusion.npy")
    predicted = set(np.flatnonzero(confusion.sum(axis=0)))
    assert predicted <= set(SYNTHIA_16_TRAIN_IDS)
    assert 18 in predicted  # their class 15 (bicycle) is our trainId 18


def test_advent_keys_that_do_not_fit_are_listed(deeplab, tmp_path):
    state = as_advent(deeplab)
    del state["layer4.2.conv3.weight"]
    state["layer7.weight"] = torch.zeros(1)
    state["layer6.conv2d_list.1.weight"] = torch.zeros(19, 1024, 3, 3)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(UserError) as error:
        score_checkpoint(tmp_path / "bad.pth", options(tmp_path, tmp_path / "out"), progress=False)
    message = str(error.value)
    assert "unexpected keys: layer7.weight" in message
    assert "missing keys: backbone.layer4.2.conv3.weight" in message
    assert "main_head.branches.1.weight (19, 1024, 3, 3) (model expects (19, 2048, 3, 3))" in message


def test_a_file_that_is_neither_format_is_refused(tmp_path):
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    refusal = "holds a state dict of another architecture .* neither a globallocal checkpoint .* nor an ADVENT"
    with pytest.raises(UserError, match=refusal):
        score_checkpoint(tmp_path / "other.pth", options(tmp_path, tmp_path / "out"), progress=False)


def test_multi_scale_wrapper_at_one_scale_without_flip_keeps_the_prediction():
    torch.manual_seed(0)
    model = build_model("mobilenetv3_large", NUM_CLASSES, bn_protocol="learned", output_stride=16).eval()
    images = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        _, main = model(images)
        _, wrapped = MultiScaleFlip(model, (1.0,), flip=False)(images)
    torch.testing.assert_close(wrapped, main.log_softmax(dim=1), atol=1e-5, rtol=1e-5)


def test_command_line_evaluate_with_multi_scale_and_flip_writes_metrics(target_root, tmp_path, capsys):
    torch.manual_seed(0)
    spec = {"arch": "mobilenetv3_large", "num_classes": NUM_CLASSES, "backbone_weights": None,
            "bn_protocol": "learned", "output_stride": 16}
    save_ours(build_model(**spec), tmp_path / "model.pt", spec)
    main(["evaluate", str(tmp_path / "model.pt"), "--target-root", str(target_root), "--split", "val",
          "--out", str(tmp_path / "out"), "--size", "48x24", "--scales", "0.75,1", "--flip", "--device", "cpu"])
    metrics = json.loads((tmp_path / "out/metrics.json").read_text())
    assert metrics["scales"] == [0.75, 1.0] and metrics["flip"] is True and metrics["num_images"] == 3
    per_class = json.loads((tmp_path / "out/per_class_iou.json").read_text())
    assert len(per_class) == NUM_CLASSES
    check = json.loads((tmp_path / "out/official_check.json").read_text())
    assert check["max_abs_per_class_iou_difference"] < 1e-6
    assert f"{tmp_path / 'model.pt'}: miou {metrics['miou']}" in capsys.readouterr().out


def test_an_advent_state_dict_falls_back_to_the_papers_size_announced_on_the_first_line(
        deeplab, target_root, tmp_path, capsys, monkeypatch):
    advent = tmp_path / "GTA2Cityscapes_advent.pth"
    torch.save(as_advent(deeplab), advent)
    monkeypatch.setattr(scoring, "DEFAULT_SIZE", CITYSCAPES_SIZE)  # 1024x512 in use; small here for speed
    main(["evaluate", str(advent), "--target-root", str(target_root), "--out", str(tmp_path / "out"),
          "--device", "cpu", "--no-official-check"])
    lines = capsys.readouterr().out.splitlines()
    width, height = CITYSCAPES_SIZE
    assert lines[0] == (f"note: {advent} is an ADVENT-layout state dict, which cannot record the size it was trained "
                        f"at: scored at {width}x{height}, the paper's Cityscapes input (pass --size WIDTHxHEIGHT to "
                        "choose another)")
    assert lines[1].startswith("note: ADVENT-format DeepLab-v2 checkpoint (19 classes)")
    assert json.loads((tmp_path / "out/metrics.json").read_text())["size"] == [width, height]


def test_the_advent_fallback_size_is_the_papers_cityscapes_input():
    loaded = scoring.LoadedCheckpoint(model=None, trained_classes=19, notes=[], size=None, advent=True)
    size, note = scoring.scoring_size(Path("x.pth"), loaded, None)
    assert size == (1024, 512) and "scored at 1024x512" in note
    ours = scoring.LoadedCheckpoint(model=None, trained_classes=19, notes=[], size=None)
    with pytest.raises(UserError, match=r"checkpoint x.pt does not record the size .* pass --size WIDTHxHEIGHT"):
        scoring.scoring_size(Path("x.pt"), ours, None)
    assert scoring.scoring_size(Path("x.pt"), ours, (64, 32)) == ((64, 32), None)
