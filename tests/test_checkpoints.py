"""Checkpoints are plain dicts that rebuild the same network, weights and input normalisation."""

import pytest
import torch

from globallocal.checkpoints import (
    CheckpointDescription,
    copy_checkpoint,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from globallocal.errors import UserError
from globallocal.models import build_model
from globallocal.training.loop import build_train_state
from support.configs import optim_config, train_config

SPEC = {"arch": "mobilenetv3_large", "num_classes": 19, "backbone_weights": None, "bn_protocol": "learned",
        "output_stride": 16}
DESCRIPTION = CheckpointDescription(target_size=(192, 96), source_size=(192, 108), source="gta5")


def test_checkpoint_round_trips_weights_iteration_and_normalisation(tmp_path):
    torch.manual_seed(0)
    model = build_model(**SPEC)
    model.input_normalization = "caffe_bgr"  # as set by loading a Caffe backbone, which the spec can't redo
    state = build_train_state(model, train_config(optim=optim_config(iterations=1, max_iters=1)), 19)
    state.iteration = 7
    save_checkpoint(tmp_path / "m.pt", state.model, SPEC, state.checkpoint_parts(), description=DESCRIPTION)

    restored, checkpoint = model_from_checkpoint(tmp_path / "m.pt")
    assert checkpoint["iteration"] == 7 and checkpoint["model_spec"] == SPEC
    assert restored.input_normalization == "caffe_bgr"
    x = torch.randn(1, 3, 64, 64)
    model.eval(), restored.eval()
    assert torch.equal(model(x)[1], restored(x)[1])
    assert not (tmp_path / "m.pt.tmp").exists()


def test_missing_checkpoint_names_the_file_and_the_stage_to_run(tmp_path):
    with pytest.raises(UserError, match=r"nothing\.pt.*dvc repro"):
        load_checkpoint(tmp_path / "nothing.pt")


def test_damaged_checkpoint_is_a_user_error(tmp_path):
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="broken.pt"):
        load_checkpoint(tmp_path / "broken.pt")


def test_a_checkpoint_describes_its_classes_source_and_sizes_in_plain_values(tmp_path):
    torch.manual_seed(0)
    description = CheckpointDescription(target_size=(64, 32), source_size=(64, 36), source="synthia")
    save_checkpoint(tmp_path / "m.pt", build_model(**SPEC), SPEC, {"iteration": 3}, description=description)
    checkpoint = torch.load(tmp_path / "m.pt", weights_only=True)
    assert (checkpoint["target_size"], checkpoint["source_size"], checkpoint["source"]) == ([64, 32], [64, 36],
                                                                                           "synthia")
    assert checkpoint["classes"][:3] == ["road", "sidewalk", "building"] and len(checkpoint["classes"]) == 19
    assert list(checkpoint)[:6] == ["model", "iteration", "model_spec", "input_normalization", "target_size",
                                    "source_size"]


def test_the_writer_requires_a_description():
    with pytest.raises(TypeError, match="description"):
        save_checkpoint("m.pt", build_model(**SPEC), SPEC)


def test_a_copy_keeps_weights_and_training_state_and_records_the_description(tmp_path):
    torch.manual_seed(0)
    state = build_train_state(build_model(**SPEC), train_config(optim=optim_config(iterations=1, max_iters=1)), 19)
    state.iteration = 5
    old = {"model": state.model.state_dict(), **state.checkpoint_parts(), "model_spec": SPEC,
           "input_normalization": "imagenet"}  # as written before checkpoints described themselves
    torch.save(old, tmp_path / "start.pt")
    copy_checkpoint(tmp_path / "start.pt", tmp_path / "copy.pt", DESCRIPTION)
    copy = torch.load(tmp_path / "copy.pt", weights_only=True)
    assert all(torch.equal(copy["model"][key], value) for key, value in old["model"].items())
    assert copy["iteration"] == 5 and copy["optimizer"].keys() == old["optimizer"].keys()
    assert copy["target_size"] == [192, 96] and copy["source"] == "gta5"
