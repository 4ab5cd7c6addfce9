"""Checkpoints as plain dicts (they load with ``torch.load(weights_only=True)``), written by one writer.

Every checkpoint this pipeline writes (the training stages, adabn, the self-training copies, the
benchmarks' scratch models) goes through ``save_checkpoint``, which requires a ``CheckpointDescription``:
besides the weights, the ``build_model`` arguments (architecture, number of classes) and the input
normalisation, the file records the class names, the source dataset and the sizes it was trained at,
so that ``python -m globallocal evaluate`` scores it exactly as the ``evaluate`` stage does without
being told anything. Checkpoints written before the description existed still load; ``evaluate`` then
asks for ``--size`` instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from globallocal.atomic import atomic_path
from globallocal.data.labels import CLASS_NAMES
from globallocal.errors import UserError
from globallocal.models import SegmentationModel, build_model
from globallocal.models.normalization import upgrade_model_spec

#: What every checkpoint written by save_checkpoint holds (and all that older ones are required to hold).
REQUIRED_KEYS = ("model", "model_spec", "input_normalization")
#: What to do about a damaged checkpoint the pipeline wrote itself (a stage's output, rebuilt by DVC).
PIPELINE_REMEDY = "delete it and re-run the stage that writes it (dvc repro)"
#: Key of the target input [width, height] the checkpoint was trained and is scored at (absent in older checkpoints).
INPUT_SIZE_KEY = "target_size"
#: Key of the source input [width, height] it was trained at.
SOURCE_SIZE_KEY = "source_size"
#: Key of the source dataset (gta5 | synthia): a SYNTHIA model is also scored as mIoU-16 / mIoU-13.
SOURCE_KEY = "source"
#: Key of the class names, in output-channel order.
CLASSES_KEY = "classes"
#: What a finished training run keeps beside the weights (TrainState.checkpoint_parts), in file order.
TRAINING_KEYS = ("optimizer", "iteration", "discriminators", "optimizer_d")
#: Pickled Python objects (anything but tensors and plain containers) are refused by weights-only loading.
_REFUSED_PICKLE_HINT = "it holds pickled Python objects, which weights-only loading refuses"


@dataclass(frozen=True)
class CheckpointDescription:
    """What a checkpoint says about how it was trained, beyond its spec: what ``evaluate`` needs to score it.

    ``target_size`` / ``source_size``: the (width, height) target and source images were resized to in
    training (the target size is also the size the ``evaluate`` stage scores at); ``source``: gta5 | synthia;
    ``classes``: the class names of the output channels.
    """

    target_size: tuple[int, int]
    source_size: tuple[int, int]
    source: str
    classes: tuple[str, ...] = CLASS_NAMES

    @classmethod
    def of_data(cls, data) -> CheckpointDescription:
        """The description of a model trained on ``data`` (a ``data.loading.DataConfig`` or the params section)."""
        return cls(target_size=tuple(data.target_size), source_size=tuple(data.source_size), source=data.source)

    def entries(self) -> dict:
        """The checkpoint keys: plain lists and strings, as weights-only loading accepts them."""
        return {
            INPUT_SIZE_KEY: [int(side) for side in self.target_size],
            SOURCE_SIZE_KEY: [int(side) for side in self.source_size],
            SOURCE_KEY: self.source,
            CLASSES_KEY: list(self.classes),
        }


def save_checkpoint(path: Path, model: SegmentationModel, model_spec: dict, training: dict | None = None, *,
                    description: CheckpointDescription) -> None:
    """Write the weights, the ``build_model`` arguments, the input normalisation and ``description``;
    atomic (temp file, rename). The one writer of every checkpoint this pipeline produces.

    ``training`` (optional, e.g. ``TrainState.checkpoint_parts()``): what the run kept beside the
    weights (``optimizer``, ``iteration``, ``discriminators``, ``optimizer_d``); stored in that layout,
    optimiser and iteration before the spec, discriminators after it.
    """
    training = dict(training or {})
    payload = {"model": model.state_dict()}
    for key in ("optimizer", "iteration"):
        if key in training:
            payload[key] = training.pop(key)
    payload["model_spec"] = model_spec
    payload["input_normalization"] = model.input_normalization
    payload.update(description.entries())
    payload.update(training)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def training_parts(checkpoint: dict) -> dict:
    """The training state a loaded checkpoint carries (optimiser, iteration, discriminators), to write it on."""
    return {key: checkpoint[key] for key in TRAINING_KEYS if key in checkpoint}


def copy_checkpoint(source: Path, out: Path, description: CheckpointDescription) -> None:
    """Write ``source``'s network, weights and training state to ``out`` through ``save_checkpoint``, described
    by ``description`` (a stage that passes its start model on, e.g. selftrain with 0 iterations)."""
    model, checkpoint = model_from_checkpoint(source)
    save_checkpoint(out, model, checkpoint["model_spec"], training_parts(checkpoint), description=description)


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
