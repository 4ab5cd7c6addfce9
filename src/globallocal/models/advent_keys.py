"""ADVENT-format DeepLab-v2 checkpoints (valeoai/ADVENT, AdaptSegNet) -> our parameter names.

Their ``ResNetMulti`` names the backbone like torchvision (``conv1``, ``bn1``, ``layer1..4`` with
``downsample.0/1``), which our ResNet-101 backbone keeps under ``backbone.``; their classifiers are
``layer5`` (aux, on layer3) and ``layer6`` (main, on layer4), each a ``conv2d_list`` of four dilated
3x3 convs that are summed, our ``aux_head.branches`` / ``main_head.branches``. A SYNTHIA model of theirs
predicts 16 classes: its outputs are placed at the 16 SYNTHIA trainIds and the other three classes get
a bias no logit can reach, so the model scores on the 19-class protocol (mIoU-16/13 are then exact).
"""

from __future__ import annotations

import torch

from globallocal.data.labels import NUM_CLASSES, SYNTHIA_16_TRAIN_IDS
from globallocal.errors import UserError

#: Prefixes a checkpoint may carry around the network's own names (nn.DataParallel, Caffe conversions).
WRAPPER_PREFIXES = ("module.", "Scale.")
BACKBONE_MODULES = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4.")
HEAD_OF_CLASSIFIER = {"layer5.conv2d_list.": "aux_head.branches.", "layer6.conv2d_list.": "main_head.branches."}
MAIN_CLASSIFIER_WEIGHT = "layer6.conv2d_list.0.weight"
#: BatchNorm counters: ours is frozen and has none.
SKIPPED_SUFFIXES = ("num_batches_tracked",)
#: Bias of the classes a 16-class model never predicts (per branch; four branches are summed).
UNPREDICTED_CLASS_BIAS = -1.0e4
#: How many keys an error message lists per kind.
SHOWN_KEYS = 10


def strip_wrappers(key: str) -> str:
    for prefix in WRAPPER_PREFIXES:
        key = key.removeprefix(prefix)
    return key


def is_advent_state_dict(state: dict) -> bool:
    """True for a state dict with ADVENT's main classifier (``layer6.conv2d_list.*``)."""
    return any(strip_wrappers(key) == MAIN_CLASSIFIER_WEIGHT for key in state)


def advent_num_classes(state: dict) -> int:
    for key, value in state.items():
        if strip_wrappers(key) == MAIN_CLASSIFIER_WEIGHT:
            return int(value.shape[0])
    raise UserError(f"not an ADVENT DeepLab-v2 state dict: no '{MAIN_CLASSIFIER_WEIGHT}'")


def rename_advent_key(key: str) -> str | None:
    """Our name of one ADVENT parameter, or None for a key that has no counterpart."""
    key = strip_wrappers(key)
    if key.endswith(SKIPPED_SUFFIXES):
        return ""
    if key.startswith(BACKBONE_MODULES):
        return f"backbone.{key}"
    for theirs, ours in HEAD_OF_CLASSIFIER.items():
        if key.startswith(theirs):
            return ours + key.removeprefix(theirs)
    return None


def _to_19_classes(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """A 16-class head tensor (weight (16, C, 3, 3) or bias (16,)) placed at the SYNTHIA trainIds."""
    if name.endswith("bias"):
        full = torch.full((NUM_CLASSES,), UNPREDICTED_CLASS_BIAS, dtype=tensor.dtype)
    else:
        full = torch.zeros((NUM_CLASSES, *tensor.shape[1:]), dtype=tensor.dtype)
    full[list(SYNTHIA_16_TRAIN_IDS)] = tensor
    return full


def advent_to_ours(state: dict, expected: dict, source: str) -> tuple[dict, list[str]]:
    """Map an ADVENT state dict onto our model's ``expected`` state dict (names and shapes).

    Returns the mapped tensors and notes for the user (e.g. a single-level model without an aux head,
    whose aux head keeps its initialisation: evaluation reads only the main head). Raises UserError
    listing every unexpected key, missing key and shape mismatch.
    """
    num_classes = advent_num_classes(state)
    if num_classes not in (NUM_CLASSES, len(SYNTHIA_16_TRAIN_IDS)):
        raise UserError(f"{source}: the ADVENT classifier predicts {num_classes} classes; "
                        f"only {NUM_CLASSES} (GTA5) or {len(SYNTHIA_16_TRAIN_IDS)} (SYNTHIA) are supported")
    mapped, unexpected = {}, []
    for key, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            continue
        ours = rename_advent_key(key)
        if ours == "":
            continue
        if ours is None or ours not in expected:
            unexpected.append(key)
            continue
        if ours.startswith(("aux_head.", "main_head.")) and num_classes != NUM_CLASSES:
            tensor = _to_19_classes(ours, tensor)
        mapped[ours] = tensor
    notes = []
    missing = [key for key in expected if key not in mapped]
    if missing and all(key.startswith("aux_head.") for key in missing):
        notes.append("single-level ADVENT model (no layer5): the aux head is unused by evaluation")
        missing = []
    mismatched = [
        f"{key} {tuple(mapped[key].shape)} (model expects {tuple(expected[key].shape)})"
        for key in mapped if mapped[key].shape != expected[key].shape
    ]
    if unexpected or missing or mismatched:
        parts = []
        for title, keys in (("unexpected keys", unexpected), ("missing keys", missing),
                            ("shape mismatches", mismatched)):
            if keys:
                more = f", ... ({len(keys)} in all)" if len(keys) > SHOWN_KEYS else ""
                parts.append(f"{title}: {', '.join(keys[:SHOWN_KEYS])}{more}")
        raise UserError(f"{source} does not fit DeepLab-v2 ResNet-101 as an ADVENT checkpoint; "
                        + "; ".join(parts))
    if num_classes != NUM_CLASSES:
        notes.append(f"{num_classes}-class (SYNTHIA) model: its classes placed at their Cityscapes trainIds")
    return mapped, notes
