"""Checkpoints as plain dicts (they load with ``torch.load(weights_only=True)``)."""

from __future__ import annotations

from pathlib import Path

import torch

from globallocal.atomic import atomic_path
from globallocal.errors import UserError
from globallocal.models import SegmentationModel, build_model
from globallocal.models.normalization import upgrade_model_spec

#: What every checkpoint written by save_checkpoint holds.
REQUIRED_KEYS = ("model", "model_spec", "input_normalization")
#: What to do about a damaged checkpoint the pipeline wrote itself (a stage's output, rebuilt by DVC).
PIPELINE_REMEDY = "delete it and re-run the stage that writes it (dvc repro)"
#: Key of the target input (width, height) the checkpoint was trained at (absent in older checkpoints).
INPUT_SIZE_KEY = "target_size"
#: Pickled Python objects (anything but tensors and plain containers) are refused by weights-only loading.
_REFUSED_PICKLE_HINT = "it holds pickled Python objects, which weights-only loading refuses"


def save_checkpoint(path: Path, model: SegmentationModel, model_spec: dict, training: dict | None = None,
                    target_size: tuple[int, int] | None = None) -> None:
    """Write the weights and the ``build_model`` arguments; atomic (temp file, rename).

    ``training`` (optional, e.g. ``TrainState.checkpoint_parts()``): what the run kept beside the
    weights (``optimizer``, ``iteration``, ``discriminators``, ``optimizer_d``); stored in that layout,
    optimiser and iteration before the spec, discriminators after it.
    ``target_size``: the (width, height) the target images were resized to in training, which
    ``python -m globallocal evaluate`` then scores at by default.
    """
    training = dict(training or {})
    payload = {"model": model.state_dict()}
    for key in ("optimizer", "iteration"):
        if key in training:
            payload[key] = training.pop(key)
    payload["model_spec"] = model_spec
    payload["input_normalization"] = model.input_normalization
    if target_size is not None:
        payload[INPUT_SIZE_KEY] = [int(side) for side in target_size]
    payload.update(training)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def save_model(path: Path, model: SegmentationModel, model_spec: dict, iteration: int = 0) -> None:
    """Write a model that was not trained by a TrainState (AdaBN): weights and spec, no optimiser; atomic."""
    save_checkpoint(path, model, model_spec, {"iteration": iteration})


def read_weights_file(path: Path, remedy: str = PIPELINE_REMEDY):
    """Whatever a weights file holds, read onto the CPU with ``weights_only=True``; a missing or
    unreadable file (or a pickle that weights_only refuses) is a UserError naming it and ending with
    ``remedy`` (a stage's own output may be deleted and rebuilt; a user's file may not)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist: run the stage that writes it first (dvc repro)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a damaged file
        reason = _REFUSED_PICKLE_HINT if "Weights only load failed" in str(error) else _first_line(error)
        raise UserError(f"checkpoint {path} cannot be read ({reason}); {remedy}") from error


def load_checkpoint(path: Path, remedy: str = PIPELINE_REMEDY) -> dict:
    """Read one of this pipeline's checkpoints; anything else is a UserError naming the file."""
    checkpoint = read_weights_file(path, remedy)
    missing = [key for key in REQUIRED_KEYS if not isinstance(checkpoint, dict) or key not in checkpoint]
    if missing:
        raise UserError(
            f"checkpoint {path} is not a checkpoint of this pipeline (no {', '.join(missing)}; a bare state dict?); "
            f"{remedy}"
        )
    return checkpoint


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def model_from_checkpoint(path: Path, remedy: str = PIPELINE_REMEDY) -> tuple[SegmentationModel, dict]:
    """Rebuild the network a checkpoint was trained as and load its weights; returns (model, checkpoint).

    The returned checkpoint's model_spec is in today's form (a ``freeze_bn`` of older checkpoints
    becomes ``bn_protocol``), so a model trained from it writes a current spec.
    """
    checkpoint = load_checkpoint(path, remedy)
    checkpoint["model_spec"] = upgrade_model_spec(checkpoint["model_spec"])
    spec = dict(checkpoint["model_spec"])
    spec["backbone_weights"] = None  # the checkpoint's own weights replace any backbone initialisation
    try:
        model = build_model(**spec)
        model.load_state_dict(checkpoint["model"])
    except (TypeError, RuntimeError) as error:
        raise UserError(
            f"checkpoint {path}: its weights do not fit the network it names ({_first_line(error)[:200]}); "
            f"{remedy}"
        ) from error
    # The spec rebuilds without backbone weights, so restore how the weights expect their input.
    model.input_normalization = checkpoint["input_normalization"]
    return model, checkpoint
