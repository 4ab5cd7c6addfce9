"""Checkpoints are plain dicts that rebuild the same network, weights and input normalisation."""

import pytest
import torch

from globallocal.checkpoints import load_checkpoint, model_from_checkpoint, save_checkpoint
from globallocal.errors import UserError
from globallocal.models import build_model
from globallocal.training.loop import build_train_state
from support.configs import optim_config, train_config

SPEC = {"arch": "mobilenetv3_large", "num_classes": 19, "backbone_weights": None, "bn_protocol": "learned",
        "output_stride": 16}


def test_checkpoint_round_trips_weights_iteration_and_normalisation(tmp_path):
    torch.manual_seed(0)
    model = build_model(**SPEC)
    model.input_normalization = "caffe_bgr"  # as set by loading a Caffe backbone, which the spec can't redo
    state = build_train_state(model, train_config(optim=optim_config(iterations=1, max_iters=1)), 19)
    state.iteration = 7
    save_checkpoint(tmp_path / "m.pt", state.model, SPEC, state.checkpoint_parts())

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
