"""Loading pretrained backbone weights from a local file (nothing is ever downloaded)."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from globallocal.errors import UserError

#: Prefixes that wrap backbone keys in common checkpoints: DeepLab-v2 Caffe conversions
#: (as distributed with AdaptSegNet / ADVENT) put everything under "Scale.";
#: nn.DataParallel under "module.".
WRAPPER_PREFIXES = ("Scale.", "module.")
#: torch.load raises any of these for a file that is not a weights-only checkpoint
#: (truncated, text, or pickled Python objects).
_UNREADABLE_CHECKPOINT_ERRORS = (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, ValueError, OSError)
#: How many missing keys an error message shows.
_SHOWN_KEYS = 5


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a state-dict file at `path`, with wrapper prefixes removed from the keys."""
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"Backbone weights not found at {path}. Nothing can be downloaded here: "
            "place the checkpoint file there by hand, or set the weights path to null to train from scratch."
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except _UNREADABLE_CHECKPOINT_ERRORS as error:
        raise UserError(
            f"Cannot read backbone weights {path} as a PyTorch state dict ({type(error).__name__}); "
            "save them with torch.save(model.state_dict(), path)."
        ) from error
    if not isinstance(checkpoint, dict):
        raise UserError(f"Backbone weights {path} hold a {type(checkpoint).__name__}, not a state dict.")
    return {
        _strip_wrappers(key): value
        for key, value in checkpoint.items()
        if isinstance(value, torch.Tensor)
    }


def _strip_wrappers(key: str) -> str:
    for prefix in WRAPPER_PREFIXES:
        key = key.removeprefix(prefix)
    return key


def load_backbone_weights(
    backbone: nn.Module,
    state: dict[str, torch.Tensor],
    skipped_prefixes: tuple[str, ...],
    path: Path,
) -> None:
    """Copy `state` into `backbone`, ignoring keys under `skipped_prefixes` (classifier heads).

    Every backbone tensor must be present with the right shape; BatchNorm's
    num_batches_tracked counters are optional (Caffe conversions have none).
    """
    kept = {key: value for key, value in state.items() if not key.startswith(skipped_prefixes)}
    expected = backbone.state_dict()
    required = [key for key in expected if not key.endswith("num_batches_tracked")]
    missing = [key for key in required if key not in kept]
    if missing:
        raise UserError(
            f"Backbone weights {path} lack {len(missing)} of the {len(required)} backbone tensors, "
            f"e.g. {', '.join(missing[:_SHOWN_KEYS])}. Use a checkpoint of the chosen architecture."
        )
    mismatched = [key for key in required if kept[key].shape != expected[key].shape]
    if mismatched:
        key = mismatched[0]
        raise UserError(
            f"Backbone weights {path}: {key} has shape {tuple(kept[key].shape)}, the model expects "
            f"{tuple(expected[key].shape)} ({len(mismatched)} tensors differ). "
            "Use a checkpoint of the chosen architecture."
        )
    backbone.load_state_dict({key: value for key, value in kept.items() if key in expected}, strict=False)
