"""Self-training after alignment: the target trains on the model's own confident predictions.

The method, in five lines (CBST / IntraDA offline; DAFormer's EMA teacher online):

1. Label target train with the starting model (the adapted one): each pixel gets the argmax class and its
   softmax confidence; val and dev images are never labelled for training (``check_held_out``).
2. Keep a pixel when its confidence reaches its class's threshold: per class, the top ``top_p`` share of
   the pixels predicted as that class (``class_balanced``), or the top share of all pixels (``global``).
3. Train on source labels + the pseudo-labelled target with the one loop (``training.train``): the
   pseudo-label cross-entropy is a target term the loop adds, weighted by ``lambda_pseudo``.
4. ``rounds`` > 1 splits the schedule and re-labels target train with the current model before each part.
5. ``teacher: ema`` labels each target batch online with an EMA copy of the model instead, every pixel
   weighted by the share of its image's pixels the teacher is confident about (>= ``ema_conf_threshold``).

The control of the method is the same loop and schedule without the target term: the target batches are
still forwarded in training mode, so both see the same BatchNorm statistics protocol.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from globallocal.alignment.representations import HeadOutputs
from globallocal.data.labels import IGNORE_INDEX
from globallocal.errors import UserError
from globallocal.models.segmentation import upsample
from globallocal.training.loop import TrainConfig, TrainState, segmentation_loss

THRESHOLD_RULES = ("class_balanced", "global")
TEACHERS = ("none", "ema")
STARTS = ("adapted", "source_only")
#: Images per forward pass when labelling target train (inference only, so larger than a training batch).
LABEL_BATCH = 8


@dataclass(frozen=True)
class SelfTrainingConfig:
    """How the target is pseudo-labelled and how much its loss weighs (params section ``selftrain``; no
    defaults: params.yaml is the one source of them)."""

    lambda_pseudo: float
    threshold_rule: str
    #: Share of the most confident pixels kept: per predicted class (class_balanced) or overall (global).
    top_p: float
    #: Offline labelling rounds over the schedule; 1 = label once, as IntraDA.
    rounds: int
    teacher: str
    #: EMA teacher: teacher = m * teacher + (1 - m) * student after every step (m warmed up as DAFormer).
    ema_momentum: float
    #: EMA teacher: a pixel counts as confident at this softmax probability (DAFormer: 0.968).
    ema_conf_threshold: float


# ---- the threshold rule --------------------------------------------------------------------------

def confidence_thresholds(
    confidence: torch.Tensor, prediction: torch.Tensor, num_classes: int, top_p: float, rule: str
) -> torch.Tensor:
    """(K,) confidence thresholds that keep the top ``top_p`` share of pixels.

    confidence, prediction: (...) max softmax probability and argmax class of each pixel (any shape).
    ``class_balanced``: class c's threshold is the confidence of its ceil(top_p * n_c)-th most confident
    pixel among the n_c pixels predicted c (CBST), so rare classes keep their share; ``global``: one
    threshold, the same rank among all pixels. A class predicted nowhere gets +inf (keeps nothing);
    ``top_p`` 0 keeps nothing.
    """
    confidence, prediction = confidence.reshape(-1).float(), prediction.reshape(-1)
    thresholds = torch.full((num_classes,), math.inf)
    if top_p <= 0:
        return thresholds
    if rule == "global":
        return thresholds.fill_(_kth_largest(confidence, top_p))
    for cls in range(num_classes):
        values = confidence[prediction == cls]
        if values.numel():
            thresholds[cls] = _kth_largest(values, top_p)
    return thresholds


def _kth_largest(values: torch.Tensor, top_p: float) -> float:
    """The confidence of the ceil(top_p * n)-th largest of n values (at least the largest)."""
    k = max(1, math.ceil(top_p * values.numel()))
    return values.topk(k).values[-1].item()


def apply_thresholds(confidence: torch.Tensor, prediction: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Pseudo-labels (same shape as ``prediction``, int64): the class where confidence >= its class's
    threshold, IGNORE_INDEX elsewhere."""
    prediction = prediction.long()  # uint8 would index as a mask
    keep = confidence >= thresholds.to(confidence.device)[prediction]
    return torch.where(keep, prediction, torch.full_like(prediction, IGNORE_INDEX))


# ---- labelling target train ----------------------------------------------------------------------

def check_held_out(names: Sequence[str], held_out: Sequence[str]) -> None:
    """Refuse to pseudo-label any image of the held-out lists (target dev and val)."""
    leaked = sorted(set(names) & set(held_out))
    if leaked:
        raise UserError(
            f"{len(leaked)} image(s) of the held-out target dev/val lists (e.g. {leaked[0]}) are in the set to "
            "pseudo-label; self-training labels target train only: rerun prepare to rebuild data/lists"
        )


@torch.inference_mode()
def predict(model: nn.Module, dataset: Dataset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, H, W) float32 confidence and (N, H, W) uint8 argmax of the main head on every image, in order.

    Eval mode (running BatchNorm statistics, nothing updated); reads the dataset directly, without a
    DataLoader, so that no random number is drawn (a DataLoader draws a seed from the global generator).
    """
    was_training = model.training
    model.eval()
    confidences, predictions = [], []
    try:
        for start in range(0, len(dataset), LABEL_BATCH):
            images = torch.stack([dataset[i]["image"] for i in range(start, min(start + LABEL_BATCH, len(dataset)))])
            images = images.to(device)
            _, main = model(images)
            prob = F.softmax(upsample(main.float(), images.shape[-2:]), dim=1)
            confidence, prediction = prob.max(dim=1)
            confidences.append(confidence.cpu())
            predictions.append(prediction.to(torch.uint8).cpu())
    finally:
        model.train(was_training)
    return torch.cat(confidences), torch.cat(predictions)


@dataclass
class PseudoLabels:
    """One labelling of target train: (N, H, W) uint8 labels (255 = ignore) and the (K,) thresholds used."""

    labels: torch.Tensor
    thresholds: torch.Tensor

    def kept_share(self) -> float:
        return (self.labels != IGNORE_INDEX).float().mean().item()


def label_dataset(
    model: nn.Module, dataset: Dataset, device: torch.device, config: SelfTrainingConfig, num_classes: int
) -> PseudoLabels:
    """Predict every image of ``dataset`` and keep the pixels the threshold rule selects."""
    confidence, prediction = predict(model, dataset, device)
    thresholds = confidence_thresholds(confidence, prediction, num_classes, config.top_p, config.threshold_rule)
    return PseudoLabels(apply_thresholds(confidence, prediction, thresholds).to(torch.uint8), thresholds)


class PseudoLabelledTarget(Dataset):
    """Target train images, each item with its current ``pseudo_label`` ((H, W) int64, 255 = ignore).

    The labels live in shared memory and a re-labelling overwrites them in place, so DataLoader worker
    processes (persistent across passes) read the new labels too; a batch a worker had already prefetched
    keeps the old ones.
    """

    def __init__(self, images: Dataset, held_out: Sequence[str]):
        check_held_out(images.names, held_out)
        self.images = images
        self.names = images.names
        self.labels: torch.Tensor | None = None

    def set_labels(self, labels: torch.Tensor) -> None:
        if self.labels is None:
            self.labels = labels.clone().share_memory_()
        else:
            self.labels.copy_(labels)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        if self.labels is None:
            raise RuntimeError("PseudoLabelledTarget read before its first labelling")
        return {**self.images[index], "pseudo_label": self.labels[index].long()}


# ---- the target terms the loop adds --------------------------------------------------------------
#
# A target term is what the loop adds to the generator's loss on each target batch, the way an aligner
# does: ``generator_terms(batch, outputs)`` returns the weighted terms to minimise, keyed by name, and the
# statistics to log (detached 0-dim tensors on the device), and ``after_step(model, iteration)`` runs
# after each optimiser step.

class OfflinePseudoLabelTerm:
    """Cross-entropy of the main head on the pseudo-labels the target batch carries (``pseudo_label``).

    ``relabel(model, iteration)`` is called after the steps listed in ``relabel_after`` (the rounds), inside
    the one loop, so that the data streams run on as in the control.
    """

    def __init__(self, weight: float, relabel_after: Sequence[int] = (), relabel: Callable | None = None):
        self.weight, self.relabel_after, self.relabel = weight, set(relabel_after), relabel

    def generator_terms(
        self, batch: dict, target: dict[str, HeadOutputs]
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The weighted pseudo-label term (``pseudo_main``; none for the control, weight 0) and its
        statistics: the share of the batch's pixels that carry a pseudo-label (``pseudo/kept_share``)
        and the unweighted loss (``loss_pseudo/main``)."""
        labels = batch["pseudo_label"].to(target["main"].logits.device, non_blocking=True)
        stats = {"pseudo/kept_share": (labels != IGNORE_INDEX).float().mean()}
        if self.weight == 0:  # the control's gradients exactly (see SelfTraining)
            return {}, stats
        loss = segmentation_loss(target["main"].logits, labels)
        stats["loss_pseudo/main"] = loss.detach()
        return {"pseudo_main": self.weight * loss}, stats

    def after_step(self, model: nn.Module, iteration: int) -> None:
        if iteration in self.relabel_after:
            self.relabel(model, iteration)


def ema_momentum_at(momentum: float, iteration: int) -> float:
    """DAFormer's warm-up: min(1 - 1 / (iteration + 1), momentum), so the teacher follows early steps."""
    return min(1.0 - 1.0 / (iteration + 1), momentum)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """teacher = momentum * teacher + (1 - momentum) * student, for every float parameter and buffer
    (BatchNorm running statistics included); integer buffers (batch counters) are copied."""
    teacher_state, student_state = teacher.state_dict(), student.state_dict()
    for key, value in teacher_state.items():
        other = student_state[key].detach()
        if value.dtype.is_floating_point:
            value.mul_(momentum).add_(other, alpha=1.0 - momentum)
        else:
            value.copy_(other)


class EmaTeacherTerm:
    """DAFormer's online self-training: an EMA teacher labels each target batch; the pixel loss is
    weighted by the share of the image's pixels whose teacher confidence reaches ``conf_threshold``."""

    def __init__(self, model: nn.Module, config: SelfTrainingConfig):
        self.teacher = copy.deepcopy(model).eval()
        for param in self.teacher.parameters():
            param.requires_grad_(False)
        self.weight, self.momentum = config.lambda_pseudo, config.ema_momentum
        self.conf_threshold = config.ema_conf_threshold

    @torch.no_grad()
    def teacher_labels(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, H, W) teacher argmax and (N,) per-image weight: the share of pixels at >= conf_threshold."""
        _, main = self.teacher(images)
        confidence, prediction = F.softmax(upsample(main.float(), images.shape[-2:]), dim=1).max(dim=1)
        return prediction, (confidence >= self.conf_threshold).float().mean(dim=(1, 2))

    def generator_terms(
        self, batch: dict, target: dict[str, HeadOutputs]
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The weighted teacher-label term (``pseudo_main``; none at weight 0) and its statistics: the
        batch's mean share of confident teacher pixels (``pseudo/teacher_confident_share``) and the
        unweighted loss (``loss_pseudo/main``)."""
        logits = target["main"].logits
        images = batch["image"].to(logits.device, non_blocking=True)
        labels, quality = self.teacher_labels(images)
        stats = {"pseudo/teacher_confident_share": quality.mean()}
        if self.weight == 0:
            return {}, stats
        per_pixel = F.cross_entropy(logits, labels, reduction="none")  # (N, H, W)
        loss = (per_pixel * quality[:, None, None]).mean()
        stats["loss_pseudo/main"] = loss.detach()
        return {"pseudo_main": self.weight * loss}, stats

    def after_step(self, model: nn.Module, iteration: int) -> None:
        """``iteration``: the number of steps the student has taken (1 after the first)."""
        ema_update(self.teacher, model, ema_momentum_at(self.momentum, iteration))


# ---- the rounds around the one loop --------------------------------------------------------------

class SelfTraining:
    """Self-training as the stage runs it: wraps the target set and attaches the term that runs the rounds."""

    def __init__(self, config: SelfTrainingConfig, held_out: Sequence[str], num_classes: int):
        self.config, self.held_out, self.num_classes = config, list(held_out), num_classes
        self.target: PseudoLabelledTarget | None = None
        self.history: list[dict] = []

    def wrap_target(self, images: Dataset) -> Dataset:
        """The dataset the target loader reads: with pseudo-labels (offline) or the plain images (EMA)."""
        check_held_out(images.names, self.held_out)
        if self.config.teacher == "ema":
            return images
        self.target = PseudoLabelledTarget(images, self.held_out)
        return self.target

    def attach(self, state: TrainState, config: TrainConfig, device: torch.device) -> None:
        """Add the pseudo-label term to ``state`` before the one ``train`` call: offline, target train is
        labelled now and again at the start of each later round (the schedule split into ``rounds`` equal
        parts; the poly schedule and the data streams run on); with ``teacher: ema``, labelled online."""
        if self.config.teacher == "ema":
            state.target_terms.append(EmaTeacherTerm(state.model, self.config))
            return
        total, rounds = config.optim.iterations, self.config.rounds
        boundaries = [total * r // rounds for r in range(1, rounds)]
        self._relabel(state.model, state.iteration, device)
        state.target_terms.append(OfflinePseudoLabelTerm(
            self.config.lambda_pseudo, boundaries, lambda model, iteration: self._relabel(model, iteration, device)
        ))

    def _relabel(self, model: nn.Module, iteration: int, device: torch.device) -> None:
        labelled = label_dataset(model, self.target.images, device, self.config, self.num_classes)
        self.target.set_labels(labelled.labels)
        self.history.append({"round": len(self.history) + 1, "from_iteration": iteration,
                             "kept_share": labelled.kept_share()})


# ---- diagnostics for the report (target ground truth, never used in training) --------------------

def pseudo_label_precision(
    labels: torch.Tensor, truth: torch.Tensor, num_classes: int
) -> tuple[list[float | None], list[float]]:
    """Per class: precision (%) of the kept pseudo-labels against the ground truth (None where none is
    kept), and the share (%) of the class's pseudo-labelled pixels among all kept pixels.

    labels, truth: (N, H, W) integer maps, 255 = ignore; pixels whose truth is ignore do not count.
    """
    labels, truth = labels.long().reshape(-1), truth.long().reshape(-1)
    valid = (labels != IGNORE_INDEX) & (truth != IGNORE_INDEX)
    kept = torch.bincount(labels[valid], minlength=num_classes)[:num_classes].double()
    correct = torch.bincount(labels[valid & (labels == truth)], minlength=num_classes)[:num_classes].double()
    total = max(kept.sum().item(), 1.0)
    precision = [100.0 * c / k if k > 0 else None for c, k in zip(correct.tolist(), kept.tolist())]
    return precision, [100.0 * k / total for k in kept.tolist()]


def labels_of(dataset: Dataset) -> torch.Tensor:
    """(N, H, W) int64 ground-truth labels of a labelled dataset (at training resolution), in order."""
    return torch.stack([dataset[i]["label"] for i in range(len(dataset))])


def samples_array(dataset: Dataset, labels: torch.Tensor, count: int) -> dict[str, np.ndarray]:
    """The first ``count`` items as arrays for the report: ``label_i`` (truth), ``pseudo_i``."""
    arrays = {}
    for index in range(min(count, len(dataset))):
        arrays[f"label_{index}"] = dataset[index]["label"].numpy().astype(np.uint8)
        arrays[f"pseudo_{index}"] = labels[index].numpy().astype(np.uint8)
    return arrays
