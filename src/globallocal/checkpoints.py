"""Checkpoints as plain dicts (they load with ``torch.load(weights_only=True)``)."""

from __future__ import annotations

from pathlib import Path

import torch

from globallocal.atomic import atomic_path
from globallocal.errors import UserError
from globallocal.models import SegmentationModel, build_model
from globallocal.training import TrainState


def save_checkpoint(path: Path, state: TrainState, model_spec: dict) -> None:
    """Write weights, optimisers, iteration and the ``build_model`` arguments; atomic (temp file, rename)."""
    payload = {
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "iteration": state.iteration,
        "model_spec": model_spec,
        "input_normalization": state.model.input_normalization,
    }
    if state.aligners is not None:
        payload["discriminators"] = state.aligners.state_dict()
    if state.optimizer_d is not None:
        payload["optimizer_d"] = state.optimizer_d.state_dict()
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint onto the CPU; a missing or unreadable file is a UserError naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist: run the stage that writes it first (dvc repro)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a damaged file
        raise UserError(f"checkpoint {path} cannot be read ({error}); delete it and re-run its stage") from error


def model_from_checkpoint(path: Path) -> tuple[SegmentationModel, dict]:
    """Rebuild the network a checkpoint was trained as and load its weights; returns (model, checkpoint)."""
    checkpoint = load_checkpoint(path)
    spec = dict(checkpoint["model_spec"])
    spec["backbone_weights"] = None  # the checkpoint's own weights replace any backbone initialisation
    model = build_model(**spec)
    model.load_state_dict(checkpoint["model"])
    # The spec rebuilds without backbone weights, so restore how the weights expect their input.
    model.input_normalization = checkpoint["input_normalization"]
    return model, checkpoint
