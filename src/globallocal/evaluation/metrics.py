"""Target-domain evaluation: confusion matrix, per-class IoU, mIoU, prediction export.

Protocol (docs/method.md, "Evaluation protocol"): images are fed at the model's input size, the MAIN
head's logits are upsampled (bilinear, align_corners=True) to the label's own resolution, argmax, and
compared with the full-resolution trainId labels; pixels labelled ``IGNORE_INDEX`` are skipped.
IoU = TP / (TP + FP + FN) per class; mIoU averages the classes whose IoU is defined
(TP + FP + FN > 0), as ADVENT and the official Cityscapes script do.

Units: ``iou``, ``miou`` and friends are fractions in [0, 1]; ``to_metrics()`` and
``official_cityscapes_evaluation()`` report percent.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cityscapes_eval
from PIL import Image
from torch import nn
from tqdm import tqdm

from globallocal.data.labels import (
    CLASS_NAMES,
    SYNTHIA_13_TRAIN_IDS,
    SYNTHIA_16_TRAIN_IDS,
    colorize,
    train_id_to_label_id_lut,
)
from globallocal.errors import UserError

PERCENT = 100.0
METRIC_DECIMALS = 2
#: File name pattern of Cityscapes ground truth that the official tool reads.
GT_LABEL_IDS_PATTERN = "*_gtFine_labelIds.png"


def confusion_matrix(pred: np.ndarray | torch.Tensor, label: np.ndarray | torch.Tensor,
                     num_classes: int) -> np.ndarray:
    """(K, K) int64 counts, rows = ground truth, columns = prediction.

    ``pred`` and ``label`` have the same shape (any, e.g. (H, W) or (N, H, W)); pixels whose label
    is outside [0, num_classes) (the ignore value 255) are not counted.
    """
    pred = torch.as_tensor(pred).reshape(-1).long()
    label = torch.as_tensor(label, device=pred.device).reshape(-1).long()
    keep = (label >= 0) & (label < num_classes)
    pair_index = num_classes * label[keep] + pred[keep]
    counts = torch.bincount(pair_index, minlength=num_classes ** 2)
    return counts.reshape(num_classes, num_classes).cpu().numpy()


def iou_per_class(confusion: np.ndarray) -> np.ndarray:
    """(K,) float64 IoU = TP / (TP + FP + FN) from a (K, K) confusion; NaN where the class never
    occurs in either ground truth or prediction."""
    confusion = np.asarray(confusion, dtype=np.float64)
    true_pos = np.diag(confusion)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - true_pos
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, true_pos / union, np.nan)


def mean_iou(iou: np.ndarray, class_ids: Sequence[int] | None = None) -> float:
    """Mean of the defined (non-NaN) IoUs of ``class_ids`` (all classes when None); NaN if none is."""
    iou = np.asarray(iou, dtype=np.float64)
    if class_ids is not None:
        iou = iou[list(class_ids)]
    defined = iou[~np.isnan(iou)]
    return float(defined.mean()) if defined.size else math.nan


def entropy_map(prob: torch.Tensor) -> torch.Tensor:
    """(N, K, H, W) probabilities -> (N, H, W) entropy divided by log K, so it lies in [0, 1]."""
    num_classes = prob.shape[1]
    # xlogy gives 0 * log 0 = 0, so one-hot pixels have entropy exactly 0.
    entropy = -torch.special.xlogy(prob, prob).sum(dim=1)
    return entropy / math.log(num_classes)


def _percent_or_none(value: float) -> float | None:
    """A fraction as percent (full precision), or None when undefined (NaN is not valid JSON)."""
    return None if math.isnan(value) else PERCENT * value


def _rounded_percent_or_none(value: float) -> float | None:
    return None if math.isnan(value) else round(PERCENT * value, METRIC_DECIMALS)


@dataclass
class EvaluationResult:
    """Accumulated evaluation of one model on one dataset.

    confusion: (K, K) int64, rows = ground truth, columns = prediction.
    iou: (K,) float64 fractions, NaN for classes absent from both ground truth and prediction.
    """

    confusion: np.ndarray
    iou: np.ndarray

    @classmethod
    def from_confusion(cls, confusion: np.ndarray) -> EvaluationResult:
        return cls(confusion=confusion, iou=iou_per_class(confusion))

    @property
    def miou(self) -> float:
        """Mean IoU over all classes (fraction)."""
        return mean_iou(self.iou)

    @property
    def miou_16(self) -> float:
        """Mean IoU over the 16 SYNTHIA classes (fraction)."""
        return mean_iou(self.iou, SYNTHIA_16_TRAIN_IDS)

    @property
    def miou_13(self) -> float:
        """Mean IoU over the 13 SYNTHIA classes (fraction)."""
        return mean_iou(self.iou, SYNTHIA_13_TRAIN_IDS)

    def to_metrics(self, synthia: bool = False) -> dict:
        """JSON-ready metrics in percent.

        mIoUs are rounded to 2 decimals; per-class IoUs keep full precision so they can be checked
        against the official Cityscapes tool. Undefined values are None.
        """
        metrics: dict = {"miou": _rounded_percent_or_none(self.miou)}
        if synthia:
            metrics["miou_16"] = _rounded_percent_or_none(self.miou_16)
            metrics["miou_13"] = _rounded_percent_or_none(self.miou_13)
        metrics["per_class_iou"] = {
            name: _percent_or_none(float(value)) for name, value in zip(CLASS_NAMES, self.iou)
        }
        return metrics


def class_map(scores: torch.Tensor) -> torch.Tensor:
    """(N, K, H, W) class scores -> (N, H, W) index of the largest, the first one on ties (torch.argmax).

    Taken over a class-last copy: on the CPU, argmax across the strided class dimension is about 8x
    slower than the copy plus a contiguous argmax (23 ms against 3 ms for 19 x 512 x 256).
    """
    return scores.permute(0, 2, 3, 1).contiguous().argmax(dim=-1)


@torch.inference_mode()
def predict(model: nn.Module, image: torch.Tensor, out_size_hw: tuple[int, int]) -> torch.Tensor:
    """(N, 3, H, W) images -> (N, K, H_out, W_out) class probabilities from the main head."""
    _, main_logits = model(image)
    return probabilities(main_logits, out_size_hw)


def probabilities(main_logits: torch.Tensor, out_size_hw: tuple[int, int]) -> torch.Tensor:
    """(N, K, h, w) main logits -> (N, K, H_out, W_out) class probabilities: upsampled (bilinear,
    align_corners=True, as in training) before the softmax."""
    logits = F.interpolate(main_logits, size=tuple(out_size_hw), mode="bilinear", align_corners=True)
    return logits.softmax(dim=1)


#: Images ``evaluate`` forwards at once (consecutive ones of one size). On 2 CPU cores a MobileNetV3-small
#: forward of ten 192x96 images costs about a quarter of ten single-image forwards per image, and a
#: channels-last input halves it again (benchmarks/eval_speed.py). Scores are computed per image.
EVAL_BATCH = 10


def same_size_batches(dataset, batch_size: int):
    """The items of ``dataset`` in order, as lists of at most ``batch_size`` consecutive items whose images
    have one size (a new list starts where the size changes)."""
    batch: list[dict] = []
    for index in range(len(dataset)):
        item = dataset[index]
        if batch and (len(batch) == batch_size or item["image"].shape != batch[0]["image"].shape):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def _check_export_dirs(labelid_dir: Path | None, color_dir: Path | None) -> None:
    """The official tool searches labelid_dir recursively, so colour PNGs must live elsewhere."""
    if labelid_dir is None or color_dir is None:
        return
    labelid_dir, color_dir = Path(labelid_dir).resolve(), Path(color_dir).resolve()
    if color_dir == labelid_dir or labelid_dir in color_dir.parents:
        raise UserError(
            f"colour prediction folder {color_dir} is inside the labelId prediction folder "
            f"{labelid_dir}; the official Cityscapes evaluation would find two predictions per image. "
            "Choose a colour folder outside the labelId folder."
        )


def _write_predictions(name: str, pred: np.ndarray, labelid_dir: Path | None,
                       color_dir: Path | None) -> None:
    """Write (H, W) uint8 trainIds as a labelId PNG and/or a colour PNG named after the image."""
    file_name = Path(name).name
    if labelid_dir is not None:
        label_ids = train_id_to_label_id_lut()[pred]
        Image.fromarray(label_ids).save(Path(labelid_dir) / file_name)
    if color_dir is not None:
        Image.fromarray(colorize(pred)).save(Path(color_dir) / file_name)


@torch.inference_mode()
def evaluate(model: nn.Module, dataset, device: torch.device, num_classes: int,
             labelid_dir: Path | None = None, color_dir: Path | None = None, num_keep: int = 0,
             progress: bool = False) -> tuple[EvaluationResult, list[dict]]:
    """Evaluate ``model`` on ``dataset`` (dicts with "image" (3, H, W), "label" (H_l, W_l) trainIds,
    "name"): images forwarded in batches of ``EVAL_BATCH`` (channels-last), each scored against its own
    label, whose size may differ from the others'.

    Writes labelId PNGs to ``labelid_dir`` and colour PNGs to ``color_dir`` when given.
    Returns the result and the first ``num_keep`` samples as dicts {"name", "pred" (H_l, W_l) uint8
    trainIds, "entropy" (H_l, W_l) float16} for qualitative figures.
    """
    _check_export_dirs(labelid_dir, color_dir)
    for folder in (labelid_dir, color_dir):
        if folder is not None:
            Path(folder).mkdir(parents=True, exist_ok=True)

    model.to(device).eval()
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    kept: list[dict] = []
    batches = same_size_batches(dataset, EVAL_BATCH)
    for items in tqdm(batches, desc="evaluate", total=math.ceil(len(dataset) / EVAL_BATCH), disable=not progress):
        images = torch.stack([item["image"] for item in items]).to(device, memory_format=torch.channels_last)
        _, main_logits = model(images)
        for item, logits in zip(items, main_logits):
            label = item["label"].to(device)
            # The batch comes out channels-last; upsampling and softmax run in the default layout (the
            # channels-last softmax over classes is several times slower on the CPU).
            probs = probabilities(logits[None].contiguous(), label.shape[-2:])
            pred = class_map(probs)
            confusion += confusion_matrix(pred, label, num_classes)
            pred_np = pred[0].to(torch.uint8).cpu().numpy()
            _write_predictions(item["name"], pred_np, labelid_dir, color_dir)
            if len(kept) < num_keep:
                entropy = entropy_map(probs)[0].to(torch.float16).cpu().numpy()
                kept.append({"name": item["name"], "pred": pred_np, "entropy": entropy})
    return EvaluationResult.from_confusion(confusion), kept


def _find_ground_truth(cityscapes_root: Path, split: str) -> list[str]:
    search = Path(cityscapes_root) / "gtFine" / split / "*" / GT_LABEL_IDS_PATTERN
    files = sorted(glob.glob(str(search)))
    if not files:
        raise UserError(
            f"no Cityscapes ground truth found at {search}; check the Cityscapes root folder "
            "and split (expected gtFine/<split>/<city>/*_gtFine_labelIds.png)."
        )
    return files


def _run_official_tool(gt_files: list[str], prediction_dir: Path, export_file: Path) -> None:
    """Drive the official script through its module-level ``args``, restoring them afterwards."""
    official_args = cityscapes_eval.args
    saved_settings = dict(vars(official_args))
    official_args.predictionPath = str(prediction_dir)
    official_args.predictionWalk = None  # cached listing of a previous prediction folder
    # The instance-level (nIoU) part calls np.in1d, which numpy 2.4 removed; we only need IoU.
    official_args.evalInstLevelScore = False
    official_args.evalPixelAccuracy = False
    official_args.quiet = True
    official_args.colorized = False
    official_args.JSONOutput = True
    official_args.exportFile = str(export_file)
    captured = io.StringIO()
    try:
        # The script reports problems by printing and calling sys.exit.
        with contextlib.redirect_stdout(captured):
            predictions = [cityscapes_eval.getPrediction(official_args, gt) for gt in gt_files]
            cityscapes_eval.evaluateImgLists(predictions, gt_files, official_args)
    except SystemExit:
        message = captured.getvalue().strip().splitlines()[-1:] or ["(no message)"]
        raise UserError(
            f"official Cityscapes evaluation of {prediction_dir} failed: {message[0]} "
            "The folder must hold exactly one <city>_<seq>_<frame>*.png labelId prediction per "
            "ground-truth image, at the ground truth's size."
        ) from None
    finally:
        vars(official_args).clear()
        vars(official_args).update(saved_settings)


def official_cityscapes_evaluation(cityscapes_root: Path, split: str,
                                   prediction_dir: Path) -> dict[str, float]:
    """Per-class IoU in percent (NaN when undefined) of the labelId PNGs in ``prediction_dir``,
    computed by cityscapesscripts' evalPixelLevelSemanticLabeling against
    ``cityscapes_root/gtFine/<split>/*/*_gtFine_labelIds.png``; the 19 train classes."""
    if not Path(prediction_dir).is_dir():
        raise UserError(f"prediction folder {prediction_dir} does not exist; export labelId PNGs "
                        "with evaluate(labelid_dir=...) first.")
    gt_files = _find_ground_truth(cityscapes_root, split)
    with tempfile.TemporaryDirectory() as tmp:
        export_file = Path(tmp) / "resultPixelLevelSemanticLabeling.json"
        _run_official_tool(gt_files, Path(prediction_dir), export_file)
        class_scores = json.loads(export_file.read_text())["classScores"]
    return {name: PERCENT * class_scores[name] for name in CLASS_NAMES}
