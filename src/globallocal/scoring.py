"""Scoring any checkpoint file (ours or an ADVENT-format DeepLab-v2) on a Cityscapes-layout root.

The protocol is the ``evaluate`` stage's (globallocal.evaluation; docs/method.md): images resized
to ``size``, main-head logits upsampled to the label's resolution, 19-class confusion matrix, IoU and
mIoU (plus mIoU-16/13 for SYNTHIA-trained models). Optionally, multi-scale and flip: the softmax
probabilities of every scale (and its mirror image) are averaged at the base size; off by default, as
in the paper's protocol.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from globallocal.checkpoints import model_from_checkpoint, read_weights_file
from globallocal.data.file_lists import list_cityscapes
from globallocal.data.labels import CLASS_NAMES, NUM_CLASSES, SYNTHIA_16_TRAIN_IDS
from globallocal.data.loading import target_dataset
from globallocal.errors import UserError
from globallocal.evaluation import evaluate, official_cityscapes_evaluation
from globallocal.models import SegmentationModel, build_model
from globallocal.models.advent_keys import advent_num_classes, advent_to_ours, is_advent_state_dict
from globallocal.runtime import resolve_device

METRICS_FILE = "metrics.json"
PER_CLASS_FILE = "per_class_iou.json"
CONFUSION_FILE = "confusion.npy"
OFFICIAL_CHECK_FILE = "official_check.json"


@dataclass(frozen=True)
class EvaluateOptions:
    target_root: Path
    split: str
    out_dir: Path
    size: tuple[int, int] = (1024, 512)  # (width, height) the images are resized to
    synthia: bool = False
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    device: str = "auto"
    official_check: bool = True

    @classmethod
    def from_strings(cls, size: str, scales: str, **fields) -> EvaluateOptions:
        """From command-line text: ``size`` "1024x512", ``scales`` "0.75,1.0,1.25"."""
        try:
            width, height = (int(side) for side in size.lower().split("x"))
            scale_values = tuple(float(scale) for scale in scales.split(","))
        except ValueError:
            raise UserError(f"--size must read WIDTHxHEIGHT (got '{size}') and --scales numbers separated "
                            f"by commas (got '{scales}')") from None
        if width < 1 or height < 1 or not scale_values or min(scale_values) <= 0:
            raise UserError(f"--size '{size}' and --scales '{scales}' must be positive")
        return cls(size=(width, height), scales=scale_values, **fields)


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


def load_any_checkpoint(path: Path) -> tuple[SegmentationModel, int, list[str]]:
    """A model from one of our checkpoints or from an ADVENT-format DeepLab-v2 state dict (both read
    with ``weights_only=True``); returns (model, number of classes it was trained on, notes)."""
    payload = read_weights_file(path)
    if isinstance(payload, dict) and "model_spec" in payload and "model" in payload:
        model, _ = model_from_checkpoint(path)
        return model, NUM_CLASSES, []
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not is_advent_state_dict(state):
        raise UserError(
            f"{path} is neither a globallocal checkpoint (a dict with 'model' and 'model_spec') nor an "
            "ADVENT DeepLab-v2 state dict (keys conv1.*, layer1-4.*, layer6.conv2d_list.*)"
        )
    model = build_model("deeplabv2_resnet101", NUM_CLASSES, freeze_bn=True)
    mapped, notes = advent_to_ours(state, model.state_dict(), str(path))
    model.load_state_dict(mapped, strict=False)
    trained_classes = advent_num_classes(state)
    notes.insert(0, f"ADVENT-format DeepLab-v2 checkpoint ({trained_classes} classes), Caffe BGR-mean input")
    return model, trained_classes, notes


def score_checkpoint(checkpoint: Path, options: EvaluateOptions, progress: bool = True) -> dict:
    """Score ``checkpoint`` on ``options.split`` of ``options.target_root``; write to ``options.out_dir``:
    metrics.json (mIoU in %), per_class_iou.json, confusion.npy, labelIds/ and color/ PNGs and, unless
    switched off, official_check.json (largest per-class difference to cityscapesscripts). Returns the
    metrics."""
    model, trained_classes, notes = load_any_checkpoint(checkpoint)
    for note in notes:
        print(f"note: {note}")
    synthia = options.synthia or trained_classes == len(SYNTHIA_16_TRAIN_IDS)
    if options.scales != (1.0,) or options.flip:
        model = MultiScaleFlip(model, options.scales, options.flip)
    names = list_cityscapes(options.target_root, options.split)
    dataset = target_dataset(options.target_root, options.split, names, options.size,
                             model.input_normalization, with_labels=True, resize_label=False)
    out_dir = Path(options.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labelid_dir = out_dir / "labelIds"
    result, _ = evaluate(model, dataset, resolve_device(options.device), NUM_CLASSES,
                         labelid_dir=labelid_dir, color_dir=out_dir / "color", progress=progress)
    full = result.to_metrics(synthia=synthia)
    per_class = full.pop("per_class_iou")
    metrics = {**full, "num_images": len(names), "checkpoint": str(checkpoint), "split": options.split,
               "scales": list(options.scales), "flip": options.flip}
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    (out_dir / PER_CLASS_FILE).write_text(json.dumps(per_class, indent=2) + "\n")
    np.save(out_dir / CONFUSION_FILE, result.confusion)
    if options.official_check:
        official = official_cityscapes_evaluation(options.target_root, options.split, labelid_dir)
        worst = max((abs(per_class[name] - official[name]) for name in CLASS_NAMES
                     if per_class[name] is not None and not math.isnan(official[name])), default=0.0)
        (out_dir / OFFICIAL_CHECK_FILE).write_text(
            json.dumps({"max_abs_per_class_iou_difference": worst}, indent=2) + "\n")
    return metrics
