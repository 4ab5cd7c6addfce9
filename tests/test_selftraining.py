"""Self-training: the threshold rule, the held-out guard, the control, rounds and the EMA teacher."""

import math

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from globallocal.data.labels import IGNORE_INDEX
from globallocal.errors import UserError
from globallocal.training.loop import RunOptions, build_train_state, train
from globallocal.training.selftraining import (
    SelfTraining,
    SelfTrainingConfig,
    apply_thresholds,
    check_held_out,
    confidence_thresholds,
    ema_momentum_at,
    ema_update,
    pseudo_label_precision,
)
from support.configs import optim_config, selftraining_config, train_config
from support.tiny_models import K, TinySegmenter

IGN = IGNORE_INDEX

# A hand-made 3-class probability map, 2 x 4 pixels. Class 0 wins 5 pixels (confidences 0.9, 0.8, 0.7, 0.6,
# 0.5), class 1 wins 2 (0.65, 0.55), class 2 one (0.45); columns are (p0, p1, p2).
PROBS = torch.tensor([
    [[0.90, 0.05, 0.05], [0.80, 0.10, 0.10], [0.70, 0.20, 0.10], [0.60, 0.30, 0.10]],
    [[0.50, 0.30, 0.20], [0.20, 0.65, 0.15], [0.25, 0.55, 0.20], [0.30, 0.25, 0.45]],
]).permute(2, 0, 1)  # (K, H, W)
CONF, PRED = PROBS.max(dim=0)


def test_class_balanced_thresholds_keep_the_top_p_share_of_each_predicted_class():
    thresholds = confidence_thresholds(CONF, PRED, 4, top_p=0.5, rule="class_balanced")
    # class 0: ceil(0.5 * 5) = 3rd of (0.9, 0.8, 0.7, 0.6, 0.5); class 1: 1st of (0.65, 0.55); class 2: its only
    # pixel; class 3 is predicted nowhere and keeps nothing.
    assert thresholds[:3].tolist() == pytest.approx([0.7, 0.65, 0.45])
    assert thresholds[3].item() == math.inf
    labels = apply_thresholds(CONF, PRED, thresholds)
    assert labels.tolist() == [[0, 0, 0, IGN], [IGN, 1, IGN, 2]]


def test_global_threshold_keeps_the_top_p_share_of_all_pixels_and_can_drop_whole_classes():
    thresholds = confidence_thresholds(CONF, PRED, 4, top_p=0.5, rule="global")
    # ceil(0.5 * 8) = 4th of all eight confidences (0.9, 0.8, 0.7, 0.65, ...): classes 1 keeps 0.65, 2 nothing.
    assert thresholds.tolist() == pytest.approx([0.65] * 4)
    assert apply_thresholds(CONF, PRED, thresholds).tolist() == [[0, 0, 0, IGN], [IGN, 1, IGN, IGN]]


def test_top_p_one_keeps_every_pixel_and_zero_keeps_none():
    assert (apply_thresholds(CONF, PRED, confidence_thresholds(CONF, PRED, 4, 1.0, "class_balanced")) == PRED).all()
    assert (apply_thresholds(CONF, PRED, confidence_thresholds(CONF, PRED, 4, 0.0, "class_balanced")) == IGN).all()


def test_pseudo_label_precision_per_class_against_the_truth():
    labels = torch.tensor([[0, 0, 1, IGN], [1, 2, 0, 0]])
    truth = torch.tensor([[0, 1, 1, 1], [0, IGN, 0, 0]])
    precision, share = pseudo_label_precision(labels, truth, 4)
    # class 0: 4 kept, 3 right; class 1: 2 kept (1 right); class 2 only where the truth is ignore: not counted.
    assert precision == pytest.approx([75.0, 50.0, None, None]) and precision[2] is None
    assert share == pytest.approx([100 * 4 / 6, 100 * 2 / 6, 0.0, 0.0])


# ---- the stage around the loop -------------------------------------------------------------------

class Images(Dataset):
    """Unlabelled target images with Cityscapes-like names."""

    def __init__(self, names, seed=1):
        g = torch.Generator().manual_seed(seed)
        self.names = list(names)
        self.images = torch.randn(len(names), 3, 16, 16, generator=g) + 1

    def __len__(self):
        return len(self.names)

    def __getitem__(self, index):
        return {"image": self.images[index], "name": self.names[index]}


class Source(Dataset):
    names = [f"{i:05d}.png" for i in range(4)]

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(4, 3, 16, 16, generator=g)
        self.labels = torch.randint(0, K, (4, 16, 16), generator=g)

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return {"image": self.images[index], "label": self.labels[index], "name": self.names[index]}


class BatchNormSegmenter(TinySegmenter):
    """TinySegmenter with BatchNorm, so that a forward pass in training mode would show in the weights."""

    def __init__(self):
        super().__init__()
        self.norm = nn.BatchNorm2d(8)

    def forward(self, x):
        features = torch.relu(self.norm(self.backbone(x)))
        return self.aux_head(features), self.main_head(features)


TRAIN = [f"city/city_{i:06d}_000019_leftImg8bit.png" for i in range(4)]
DEV = ["city/city_000099_000019_leftImg8bit.png"]


def loader(dataset, seed):
    from globallocal.data.loading import train_loader

    return train_loader(dataset, batch_size=2, seed=seed, num_workers=0)




def trained(self_training: SelfTrainingConfig | None, iterations=6) -> dict[str, torch.Tensor]:
    """The weights after ``iterations`` from the same start: with a SelfTraining, or as its control."""
    torch.manual_seed(0)
    model = BatchNormSegmenter()
    with torch.no_grad():  # spread the start model's logits so that it predicts every class somewhere
        model.main_head.weight.mul_(10)
    # The selftrain stage's loop: target batches forwarded in training mode, no alignment term.
    config = train_config(optim_config(iterations, 10, lr=0.01))
    state = build_train_state(model, config, K)
    target = Images(TRAIN)
    device = torch.device("cpu")
    if self_training is None:
        train(state, config, loader(Source(), 0), loader(target, 1), device, RunOptions(progress=False))
    else:
        method = SelfTraining(self_training, held_out=DEV, num_classes=K)
        target_loader = loader(method.wrap_target(target), 1)
        method.attach(state, config, device)
        train(state, config, loader(Source(), 0), target_loader, device, RunOptions(progress=False))
    return {key: value.clone() for key, value in model.state_dict().items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("variant", [
    dict(rounds=2, threshold_rule="class_balanced", top_p=0.3),
    dict(teacher="ema", ema_momentum=0.9, ema_conf_threshold=0.4),  # the tiny model is never 0.968 sure
], ids=["offline-2-rounds", "ema-teacher"])
def test_with_the_pseudo_label_weight_at_zero_the_stage_is_its_control_bit_for_bit(variant):
    control = trained(None)
    assert_same(trained(selftraining_config(lambda_pseudo=0.0, **variant)), control)
    with pytest.raises(AssertionError):  # the weight is what moves the model away from the control
        assert_same(trained(selftraining_config(lambda_pseudo=1.0, **variant)), control)


def test_threshold_rule_top_p_and_rounds_each_change_the_trained_model():
    base = trained(selftraining_config(top_p=0.5))
    for changed in (dict(threshold_rule="global"), dict(top_p=0.9), dict(rounds=3)):
        with pytest.raises(AssertionError):
            assert_same(trained(selftraining_config(**{"top_p": 0.5, **changed})), base)


def test_rounds_relabel_target_train_at_the_start_of_each_part_of_the_schedule():
    torch.manual_seed(0)
    config = train_config(optim_config(7, 10, lr=0.01))
    state = build_train_state(BatchNormSegmenter(), config, K)
    method = SelfTraining(selftraining_config(rounds=3), held_out=DEV, num_classes=K)
    target = method.wrap_target(Images(TRAIN))
    method.attach(state, config, torch.device("cpu"))
    train(state, config, loader(Source(), 0), loader(target, 1), torch.device("cpu"), RunOptions(progress=False))
    assert [entry["from_iteration"] for entry in method.history] == [0, 2, 4]
    assert state.iteration == 7


def test_held_out_dev_or_val_images_are_never_pseudo_labelled():
    check_held_out(TRAIN, DEV)  # disjoint: fine
    with pytest.raises(UserError, match="held-out target dev/val"):
        check_held_out(TRAIN + DEV, DEV)
    method = SelfTraining(selftraining_config(), held_out=DEV, num_classes=K)
    with pytest.raises(UserError, match="city_000099"):
        method.wrap_target(Images(TRAIN + DEV))
    with pytest.raises(UserError, match="held-out"):
        SelfTraining(selftraining_config(teacher="ema"), held_out=DEV, num_classes=K).wrap_target(Images(DEV))


# ---- the EMA teacher -----------------------------------------------------------------------------

class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.norm = nn.BatchNorm1d(2)


def test_ema_update_follows_the_formula_on_parameters_and_batchnorm_statistics():
    torch.manual_seed(0)
    teacher, student = TinyNet(), TinyNet()
    student.norm.running_mean.fill_(2.0)
    student.norm.running_var.fill_(3.0)
    student.norm.num_batches_tracked.fill_(7)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    ema_update(teacher, student, momentum=0.9)
    after, other = teacher.state_dict(), student.state_dict()
    for key in ("linear.weight", "linear.bias", "norm.weight", "norm.bias"):
        torch.testing.assert_close(after[key], 0.9 * before[key] + 0.1 * other[key])
    torch.testing.assert_close(after["norm.running_mean"], torch.full((2,), 0.9 * 0.0 + 0.1 * 2.0))
    torch.testing.assert_close(after["norm.running_var"], torch.full((2,), 0.9 * 1.0 + 0.1 * 3.0))
    assert after["norm.num_batches_tracked"].item() == 7
    assert all(not p.requires_grad or p.grad is None for p in teacher.parameters())


def test_ema_momentum_warms_up_as_daformer():
    assert ema_momentum_at(0.99, 1) == 0.5  # after the first step the teacher is halfway to the student
    assert ema_momentum_at(0.99, 9) == pytest.approx(0.9)
    assert ema_momentum_at(0.99, 1000) == 0.99


# ---- params and the main table -------------------------------------------------------------------

def committed_params():
    from pathlib import Path

    import yaml

    return yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())


def test_selftrain_params_reach_the_config_and_iterations_zero_is_allowed_for_selftrain_only():
    from globallocal import config

    params = committed_params()
    params["selftrain"].update(threshold_rule="global", top_p=0.25, rounds=2, lambda_pseudo=0.5, iterations=0)
    tree = config.parse(params)
    st = tree.selftrain_config()
    assert (st.threshold_rule, st.top_p, st.rounds, st.lambda_pseudo) == ("global", 0.25, 2, 0.5)
    assert tree.optim_config("selftrain").iterations == 0
    params["adapt"]["iterations"] = 0
    with pytest.raises(UserError, match="adapt.iterations"):
        config.validate(params)


def test_an_ema_teacher_with_several_rounds_is_refused_naming_the_key():
    from globallocal import config

    params = committed_params()
    params["selftrain"].update(teacher="ema", rounds=2)
    with pytest.raises(UserError, match="selftrain.rounds"):
        config.validate(params)


def test_the_offline_term_returns_its_weighted_loss_and_its_statistics_as_values():
    from globallocal.alignment.representations import HeadOutputs
    from globallocal.training.selftraining import OfflinePseudoLabelTerm

    logits = torch.zeros(1, 3, 2, 2, requires_grad=True)  # uniform: cross-entropy log 3 at every pixel
    batch = {"pseudo_label": torch.tensor([[[0, 1], [IGN, 2]]])}  # 3 of 4 pixels labelled
    terms, stats = OfflinePseudoLabelTerm(0.5).generator_terms(batch, {"main": HeadOutputs(logits)})
    assert list(stats) == ["pseudo/kept_share", "loss_pseudo/main"]
    assert stats["pseudo/kept_share"].item() == 0.75
    assert stats["loss_pseudo/main"].item() == pytest.approx(math.log(3))
    assert not any(value.requires_grad for value in stats.values()) and all(v.dim() == 0 for v in stats.values())
    assert set(terms) == {"pseudo_main"} and terms["pseudo_main"].item() == pytest.approx(0.5 * math.log(3))
    assert terms["pseudo_main"].requires_grad
    # The control (weight 0): no term, the share still logged.
    terms, stats = OfflinePseudoLabelTerm(0.0).generator_terms(batch, {"main": HeadOutputs(logits)})
    assert terms == {} and list(stats) == ["pseudo/kept_share"] and stats["pseudo/kept_share"].item() == 0.75


def test_the_ema_term_returns_the_confident_share_and_the_weighted_loss_as_values():
    from globallocal.alignment.representations import HeadOutputs
    from globallocal.training.selftraining import EmaTeacherTerm

    class Constant(nn.Module):
        """Predicts class 0 with softmax (e^2, 1, 1) / (e^2 + 2) = 0.787 on the left column, uniform on the right."""

        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(()))

        def forward(self, images):
            main = torch.zeros(images.shape[0], 3, 2, 2)
            main[:, 0, :, 0] = 2.0
            return main * self.scale, main * self.scale

    term = EmaTeacherTerm(Constant(), selftraining_config(lambda_pseudo=2.0, teacher="ema", ema_conf_threshold=0.7))
    logits = torch.zeros(1, 3, 2, 2, requires_grad=True)
    terms, stats = term.generator_terms({"image": torch.zeros(1, 3, 2, 2)}, {"main": HeadOutputs(logits)})
    assert stats["pseudo/teacher_confident_share"].item() == 0.5  # the left column only
    # every pixel: cross-entropy log 3 against the teacher's argmax, times the image's weight 0.5
    assert stats["loss_pseudo/main"].item() == pytest.approx(0.5 * math.log(3))
    assert terms["pseudo_main"].item() == pytest.approx(2.0 * 0.5 * math.log(3))
    assert not stats["loss_pseudo/main"].requires_grad


def test_the_loop_forwards_the_target_stream_with_no_aligners_so_batchnorm_sees_the_target():
    """The control's loop: no aligner, no target term, yet each target batch goes through the model in
    training mode, so only the BatchNorm running statistics differ from a run without the target stream."""
    def run(with_target: bool) -> tuple[dict[str, torch.Tensor], object]:
        torch.manual_seed(0)
        model = BatchNormSegmenter()
        config = train_config(optim_config(3, 10, lr=0.01))
        state = build_train_state(model, config, K)
        target = loader(Images(TRAIN), 1) if with_target else None
        train(state, config, loader(Source(), 0), target, torch.device("cpu"), RunOptions(progress=False))
        return {key: value.clone() for key, value in model.state_dict().items()}, state.aligners

    with_target, aligners = run(True)
    without, _ = run(False)
    assert aligners is None
    changed = {key for key in with_target if not torch.equal(with_target[key], without[key])}
    statistics = {key for key in with_target if key.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    assert changed == statistics
