"""Scoring any checkpoint file (ours or an ADVENT-format DeepLab-v2) on a Cityscapes-layout root.

The protocol is the ``evaluate`` stage's (globallocal.evaluation.metrics; docs/method.md): images resized
to ``size``, main-head logits upsampled to the label's resolution, 19-class confusion matrix, IoU and
mIoU (plus mIoU-16/13 for SYNTHIA-trained models). Optionally, multi-scale and flip: the softmax
probabilities of every scale (and its mirror image) are averaged at the base size; off by default, as
in the paper's protocol.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from globallocal import atomic
from globallocal.checkpoint_files import USER_FILE_REMEDY, check_checkpoint_file
from globallocal.checkpoints import INPUT_SIZE_KEY, SOURCE_KEY, model_from_checkpoint, read_weights_file
from globallocal.data.file_lists import list_cityscapes
from globallocal.data.labels import CLASS_NAMES, NUM_CLASSES, SYNTHIA_16_TRAIN_IDS
from globallocal.data.loading import target_dataset
from globallocal.errors import UserError
from globallocal.evaluation.metrics import evaluate, official_cityscapes_evaluation
from globallocal.evaluation.options import DEFAULT_SIZE, EvaluateOptions
from globallocal.models import SegmentationModel, build_model
from globallocal.models.advent_keys import advent_num_classes, advent_to_ours, is_advent_state_dict
from globallocal.runtime import resolve_device

METRICS_FILE = "metrics.json"
PER_CLASS_FILE = "per_class_iou.json"
CONFUSION_FILE = "confusion.npy"
OFFICIAL_CHECK_FILE = "official_check.json"


class MultiScaleFlip(nn.Module):
    """Wraps a segmentation model: the main output becomes log of the mean softmax over ``scales``
    (and horizontal flips), at the base input's feature size; the aux output is passed through."""

    def __init__(self, model: SegmentationModel, scales: tuple[float, ...], flip: bool):
        super().__init__()
        self.model, self.scales, self.flip = model, scales, flip
        self.input_normalization = model.input_normalization

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, H, W) -> (aux (N, K, h, w), log mean probabilities (N, K, h, w))."""
        aux, main = self.model(images)
        size = main.shape[-2:]
        total = torch.zeros_like(main)
        passes = [(scale, mirrored) for scale in self.scales for mirrored in ((False, True) if self.flip else (False,))]
        for scale, mirrored in passes:
            if scale == 1.0 and not mirrored:
                logits = main
            else:
                batch = images if scale == 1.0 else F.interpolate(
                    images, scale_factor=scale, mode="bilinear", align_corners=True)
                _, logits = self.model(batch.flip(-1) if mirrored else batch)
                logits = logits.flip(-1) if mirrored else logits
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=True)
            total += logits.softmax(dim=1)
        return aux, (total / len(passes)).clamp_min(torch.finfo(total.dtype).tiny).log()


#: Keys of a foreign state dict quoted in the message that refuses it.
_QUOTED_KEYS = 3


@dataclass
class LoadedCheckpoint:
    """A model ready to score and what its file says about it.

    ``trained_classes``: the classes it was trained on (16 for a SYNTHIA ADVENT model); ``size``: the target
    (width, height) it was trained at, None where the file does not say; ``source``: gta5 | synthia where
    recorded; ``advent``: an ADVENT-layout state dict (which cannot record a size); ``notes``: lines to print.
    """

    model: SegmentationModel
    trained_classes: int
    notes: list[str]
    size: tuple[int, int] | None
    source: str | None = None
    advent: bool = False

    @property
    def synthia(self) -> bool:
        """Whether it is scored on SYNTHIA's 16 / 13 classes too."""
        return self.source == "synthia" or self.trained_classes == len(SYNTHIA_16_TRAIN_IDS)


def load_any_checkpoint(path: Path) -> LoadedCheckpoint:
    """A model from one of our checkpoints or from an ADVENT-format DeepLab-v2 state dict (both read
    with ``weights_only=True``)."""
    check_checkpoint_file(path)  # not a torch file at all: told apart before torch reads it
    payload = read_weights_file(path, USER_FILE_REMEDY)
    if isinstance(payload, dict) and "model_spec" in payload and "model" in payload:
        model, checkpoint = model_from_checkpoint(path, USER_FILE_REMEDY)
        size = checkpoint.get(INPUT_SIZE_KEY)
        return LoadedCheckpoint(model, NUM_CLASSES, [], tuple(size) if size is not None else None,
                                source=checkpoint.get(SOURCE_KEY))
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not is_advent_state_dict(state):
        keys = list(state)[:_QUOTED_KEYS] if isinstance(state, dict) else []
        held = (f"a state dict of another architecture (keys {', '.join(map(str, keys))}, ...)" if keys
                else f"a {type(payload).__name__}")
        raise UserError(
            f"{path} holds {held}: neither a globallocal checkpoint (a dict with 'model' and 'model_spec') "
            "nor an ADVENT DeepLab-v2 state dict (keys conv1.*, layer1-4.*, layer6.conv2d_list.*); "
            f"{USER_FILE_REMEDY}"
        )
    model = build_model("deeplabv2_resnet101", NUM_CLASSES, bn_protocol="frozen")
    mapped, notes = advent_to_ours(state, model.state_dict(), str(path))
    model.load_state_dict(mapped, strict=False)
    trained_classes = advent_num_classes(state)
    notes.insert(0, f"ADVENT-format DeepLab-v2 checkpoint ({trained_classes} classes), Caffe BGR-mean input")
    return LoadedCheckpoint(model, trained_classes, notes, None, advent=True)


def scoring_size(checkpoint: Path, loaded: LoadedCheckpoint, requested: tuple[int, int] | None,
                 ) -> tuple[tuple[int, int], str | None]:
    """The (width, height) to score at and the note that says why (None for an explicit --size).

    Never a silent guess: a checkpoint of this pipeline that does not record its size (written before
    checkpoints described themselves) is a UserError asking for --size; only an ADVENT-layout state
    dict, which has nowhere to record one, falls back to DEFAULT_SIZE, with a note.
    """
    if requested is not None:
        return requested, None
    if loaded.size is not None:
        width, height = loaded.size
        return loaded.size, f"scored at {width}x{height}, the size it was trained at (--size to change)"
    width, height = DEFAULT_SIZE
    if loaded.advent:
        return DEFAULT_SIZE, (f"{checkpoint} is an ADVENT-layout state dict, which cannot record the size it was "
                              f"trained at: scored at {width}x{height}, the paper's Cityscapes input "
                              "(pass --size WIDTHxHEIGHT to choose another)")
    raise UserError(
        f"checkpoint {checkpoint} does not record the size it was trained at (written before checkpoints "
        "described themselves): pass --size WIDTHxHEIGHT, the data.target_size of the run that wrote it "
        f"(192x96 for the embedded default, {width}x{height} for the paper presets), or re-run the stage "
        "that writes it (dvc repro) to record it"
    )


def score_checkpoint(checkpoint: Path, options: EvaluateOptions, progress: bool = True) -> dict:
    """Score ``checkpoint`` on ``options.split`` of ``options.target_root``; write to ``options.out_dir``:
    metrics.json (mIoU in %), per_class_iou.json, confusion.npy, labelIds/ and color/ PNGs and, unless
    switched off, official_check.json (largest per-class difference to cityscapesscripts). Returns the
    metrics. The size note (or the ADVENT fallback) is the first line printed."""
    loaded = load_any_checkpoint(checkpoint)
    size, size_note = scoring_size(checkpoint, loaded, options.size)
    for note in ([size_note] if size_note else []) + loaded.notes:
        print(f"note: {note}")
    model = loaded.model
    synthia = options.synthia or loaded.synthia
    if options.scales != (1.0,) or options.flip:
        model = MultiScaleFlip(model, options.scales, options.flip)
    names = list_cityscapes(options.target_root, options.split)
    dataset = target_dataset(options.target_root, options.split, names, size,
                             model.input_normalization, with_labels=True, resize_label=False)
    out_dir = Path(options.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labelid_dir = out_dir / "labelIds"
    result, _ = evaluate(model, dataset, resolve_device(options.device), NUM_CLASSES,
                         labelid_dir=labelid_dir, color_dir=out_dir / "color", progress=progress)
    full = result.to_metrics(synthia=synthia)
    per_class = full.pop("per_class_iou")
    metrics = {**full, "num_images": len(names), "checkpoint": str(checkpoint), "split": options.split,
               "size": list(size), "scales": list(options.scales), "flip": options.flip}
    # Each file whole or absent: a kill leaves no half-written JSON for a script to choke on.
    atomic.write_json(out_dir / METRICS_FILE, metrics)
    atomic.write_json(out_dir / PER_CLASS_FILE, per_class)
    with atomic.atomic_path(out_dir / CONFUSION_FILE) as tmp, open(tmp, "wb") as handle:
        np.save(handle, result.confusion)
    if options.official_check:
        official = official_cityscapes_evaluation(options.target_root, options.split, labelid_dir)
        worst = max((abs(per_class[name] - official[name]) for name in CLASS_NAMES
                     if per_class[name] is not None and not math.isnan(official[name])), default=0.0)
        atomic.write_json(out_dir / OFFICIAL_CHECK_FILE, {"max_abs_per_class_iou_difference": worst})
    return metrics
