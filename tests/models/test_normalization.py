"""BatchNorm protocols (learned | reference | frozen) change exactly what they say; AdaBN re-estimates
statistics only; checkpoints and params from before bn_protocol are handled."""

import copy
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from globallocal import config
from globallocal.checkpoints import model_from_checkpoint
from globallocal.errors import UserError
from globallocal.models import build_model
from globallocal.models.normalization import (
    apply_bn_protocol,
    batchnorm_factory,
    batchnorm_layers,
    reestimate_batchnorm,
    upgrade_model_spec,
)

REPO = Path(__file__).resolve().parents[2]
NUM_CLASSES = 19


def tiny_model(protocol: str) -> nn.Module:
    """The embedded network at its smallest (MobileNetV3-small, output stride 16), built as the pipeline does."""
    torch.manual_seed(0)
    return build_model("mobilenetv3_small", NUM_CLASSES, bn_protocol=protocol, output_stride=16, bn_momentum=0.1)


def train_mode_step(model: nn.Module) -> None:
    """One train-mode forward + backward on a (2, 3, 32, 32) batch far from the initial statistics."""
    model.train()
    images = 3.0 + 2.0 * torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    aux, main = model(images)
    (aux.sum() + main.sum()).backward()


def first_bn(model: nn.Module) -> nn.Module:
    return model.backbone.features[0][1]  # the stem's BatchNorm


def optimised_ids(model: nn.Module) -> set[int]:
    return {id(p) for group in model.param_groups(0.01) for p in group["params"]}


def affine_params(model: nn.Module) -> list[torch.Tensor]:
    return [p for layer in batchnorm_layers(model) for p in (layer.weight, layer.bias)]


def test_learned_updates_statistics_and_trains_the_affine():
    model = tiny_model("learned")
    bn = first_bn(model)
    assert isinstance(bn, nn.BatchNorm2d) and bn.momentum == 0.1
    train_mode_step(model)
    assert not torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    assert int(bn.num_batches_tracked) == 1
    assert bn.weight.grad is not None and bn.bias.grad is not None
    assert {id(p) for p in affine_params(model)} <= optimised_ids(model)


def test_reference_updates_statistics_but_freezes_the_affine():
    model = tiny_model("reference")
    bn = first_bn(model)
    assert isinstance(bn, nn.BatchNorm2d) and bn.momentum == 0.1
    train_mode_step(model)
    assert not torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    assert int(bn.num_batches_tracked) == 1
    affine = affine_params(model)
    assert len(affine) == 2 * len(batchnorm_layers(model)) > 0
    assert all(p.grad is None and not p.requires_grad for p in affine)
    assert not {id(p) for p in affine} & optimised_ids(model)
    # Everything else still trains: the convs and both heads.
    assert first_conv_grad(model) is not None
    assert all(p.grad is not None for p in model.main_head.parameters())


def first_conv_grad(model: nn.Module):
    return model.backbone.features[0][0].weight.grad


def test_frozen_keeps_statistics_and_affine_fixed():
    model = tiny_model("frozen")
    assert batchnorm_layers(model) == []
    bn = first_bn(model)
    assert isinstance(bn, FrozenBatchNorm2d)
    before = {name: value.clone() for name, value in bn.state_dict().items()}
    train_mode_step(model)
    assert all(torch.equal(before[name], value) for name, value in bn.state_dict().items())
    assert not any(isinstance(p, nn.Parameter) for p in bn.buffers())  # its affine is buffers, no grad
    assert first_conv_grad(model) is not None


def test_learned_and_reference_differ_only_in_what_the_optimiser_holds():
    learned, reference = tiny_model("learned"), tiny_model("reference")
    assert all(torch.equal(a, b) for a, b in zip(learned.state_dict().values(), reference.state_dict().values()))
    counts = lambda model: [len(group["params"]) for group in model.param_groups(0.01)]  # noqa: E731
    num_bn = len(batchnorm_layers(learned))
    backbone_learned, heads_learned = counts(learned)
    backbone_reference, heads_reference = counts(reference)
    # MobileNetV3-small: 34 BatchNorms (68 affine tensors) and 70 other backbone tensors; 2 heads x 4 ASPP
    # branches x (weight, bias).
    assert (num_bn, backbone_learned, backbone_reference) == (34, 138, 70)
    assert heads_learned == heads_reference == 16


def test_unknown_protocol_is_refused():
    with pytest.raises(ValueError, match="bn_protocol 'sometimes'"):
        batchnorm_factory("sometimes")


# --- params and old checkpoints --------------------------------------------------------------------

def test_params_with_freeze_bn_get_one_error_naming_the_new_key():
    params = copy.deepcopy(config.load_params(REPO / "params.yaml"))
    del params["model"]["bn_protocol"]
    params["model"]["freeze_bn"] = False
    with pytest.raises(UserError, match=r"^params key 'model.freeze_bn' was replaced by 'model.bn_protocol'"):
        config.validate(params)


def test_bad_bn_protocol_names_the_key_and_the_values():
    params = copy.deepcopy(config.load_params(REPO / "params.yaml"))
    params["model"]["bn_protocol"] = "fixed"
    with pytest.raises(UserError, match="model.bn_protocol.*learned, reference, frozen"):
        config.validate(params)


def test_committed_default_is_learned_and_reaches_the_spec():
    params = config.load_params(REPO / "params.yaml")
    assert config.parse(params).model.spec(NUM_CLASSES)["bn_protocol"] == "learned"
    assert "freeze_bn" not in config.parse(params).model.spec(NUM_CLASSES)


@pytest.mark.parametrize("freeze_bn, protocol, layer", [(True, "frozen", FrozenBatchNorm2d),
                                                        (False, "learned", nn.BatchNorm2d)])
def test_old_checkpoint_with_freeze_bn_still_loads(tmp_path, freeze_bn, protocol, layer):
    model = tiny_model(protocol)
    old_spec = {"arch": "mobilenetv3_small", "num_classes": NUM_CLASSES, "backbone_weights": None,
                "freeze_bn": freeze_bn, "output_stride": 16, "bn_momentum": 0.1}
    torch.save({"model": model.state_dict(), "model_spec": old_spec, "input_normalization": "imagenet"},
               tmp_path / "old.pt")
    restored, checkpoint = model_from_checkpoint(tmp_path / "old.pt")
    assert checkpoint["model_spec"]["bn_protocol"] == protocol and "freeze_bn" not in checkpoint["model_spec"]
    assert isinstance(first_bn(restored), layer)
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(model.eval()(x)[1], restored.eval()(x)[1])


def test_upgrade_leaves_a_current_spec_alone():
    spec = {"arch": "mobilenetv3_small", "bn_protocol": "reference"}
    assert upgrade_model_spec(spec) == spec


# --- AdaBN -----------------------------------------------------------------------------------------

class TwoLayer(nn.Module):
    """conv -> BN -> ReLU -> conv -> BN: small enough to compute AdaBN's statistics by hand."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4, momentum=0.1)
        self.conv2 = nn.Conv2d(4, 2, 1)
        self.bn2 = nn.BatchNorm2d(2, momentum=0.1)
        self.dropout = nn.Dropout(0.5)  # must stay off during re-estimation

    def forward(self, x):
        return self.bn2(self.conv2(self.dropout(torch.relu(self.bn1(self.conv1(x))))))


def target_batches(count: int = 2) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    return [5.0 + 3.0 * torch.randn(4, 3, 6, 6, generator=generator) for _ in range(count)]


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and unbiased variance over (N, H, W), written out by hand."""
    n = x.shape[0] * x.shape[2] * x.shape[3]
    mean = x.sum(dim=(0, 2, 3)) / n
    var = ((x - mean[None, :, None, None]) ** 2).sum(dim=(0, 2, 3)) / (n - 1)
    return mean, var


def test_adabn_statistics_equal_the_hand_computed_target_mean_and_variance():
    model = TwoLayer()
    model.bn1.running_mean.fill_(7.0)  # source statistics that AdaBN must discard, not blend
    model.bn1.running_var.fill_(9.0)
    batches = target_batches(2)
    assert reestimate_batchnorm(model, batches) == 2

    # Layer 1 sees conv1(x); each batch's mean and unbiased variance weigh equally (cumulative average).
    with torch.no_grad():
        stats1 = [channel_stats(model.conv1(x)) for x in batches]
        expected_mean1 = (stats1[0][0] + stats1[1][0]) / 2
        expected_var1 = (stats1[0][1] + stats1[1][1]) / 2
        # Layer 2 sees the activations normalised with each batch's own (biased) statistics, as train mode does.
        stats2 = []
        for x, (mean, var) in zip(batches, stats1):
            h = model.conv1(x)
            n = h.shape[0] * h.shape[2] * h.shape[3]
            biased = var * (n - 1) / n
            normed = (h - mean[None, :, None, None]) / torch.sqrt(biased[None, :, None, None] + model.bn1.eps)
            normed = normed * model.bn1.weight[None, :, None, None] + model.bn1.bias[None, :, None, None]
            stats2.append(channel_stats(model.conv2(torch.relu(normed))))
    torch.testing.assert_close(model.bn1.running_mean, expected_mean1)
    torch.testing.assert_close(model.bn1.running_var, expected_var1)
    torch.testing.assert_close(model.bn2.running_mean, (stats2[0][0] + stats2[1][0]) / 2)
    torch.testing.assert_close(model.bn2.running_var, (stats2[0][1] + stats2[1][1]) / 2)


def test_adabn_changes_only_running_statistics():
    model = tiny_model("learned")
    train_mode_step(model)  # some source statistics and gradients to keep
    before = {name: value.clone() for name, value in model.state_dict().items()}
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    generator = torch.Generator().manual_seed(2)
    reestimate_batchnorm(model, [torch.randn(2, 3, 32, 32, generator=generator) for _ in range(3)])
    after = model.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    statistics = {name for name in before if name.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    assert changed == statistics  # every BatchNorm's statistics re-estimated, nothing else touched
    assert all(torch.equal(p.grad, grads[name]) for name, p in model.named_parameters())  # no backward ran
    assert all(layer.momentum == 0.1 for layer in batchnorm_layers(model))  # restored
    assert not model.training


def test_adabn_leaves_the_model_in_eval_mode_with_the_new_statistics_used():
    model = TwoLayer()
    x = target_batches(1)[0]
    reestimate_batchnorm(model, [x])
    assert not model.training and not model.bn1.training
    with torch.no_grad():  # eval mode uses the re-estimated mean: this batch's, so it centres to the bias
        out = model.bn1(model.conv1(x))
    torch.testing.assert_close(out.mean(dim=(0, 2, 3)), model.bn1.bias, atol=1e-5, rtol=0)


def test_adabn_on_a_frozen_model_is_a_user_error():
    with pytest.raises(UserError, match="no BatchNorm layer with running statistics"):
        reestimate_batchnorm(tiny_model("frozen"), target_batches(1))


def test_apply_bn_protocol_learned_changes_nothing():
    model = tiny_model("learned")
    assert all(p.requires_grad for p in apply_bn_protocol(model, "learned").parameters())


# --- GroupNorm control -----------------------------------------------------------------------------

def test_groupnorm_backbone_has_no_batchnorm_and_no_statistics():
    torch.manual_seed(0)
    model = build_model("mobilenetv3_small", NUM_CLASSES, bn_protocol="learned", output_stride=16, norm="group")
    kinds = {type(module) for module in model.modules()}
    assert nn.GroupNorm in kinds and not kinds & {nn.BatchNorm2d, FrozenBatchNorm2d}
    assert all(module.num_groups == 8 for module in model.modules() if isinstance(module, nn.GroupNorm))
    assert not [name for name in model.state_dict() if "running" in name or "num_batches" in name]


def test_groupnorm_output_of_an_image_does_not_depend_on_its_batch_or_mode():
    torch.manual_seed(0)
    model = build_model("mobilenetv3_small", NUM_CLASSES, bn_protocol="learned", output_stride=16, norm="group")
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        alone = model.eval()(images[:1])[1]
        in_batch = model.train()(images)[1][:1]
    torch.testing.assert_close(alone, in_batch, atol=1e-5, rtol=1e-4)


def test_groupnorm_model_trains():
    torch.manual_seed(0)
    model = build_model("mobilenetv3_small", NUM_CLASSES, bn_protocol="learned", output_stride=16, norm="group")
    optimizer = torch.optim.SGD(model.param_groups(0.001), lr=0.001, momentum=0.9)
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    labels = torch.randint(0, NUM_CLASSES, (2, 2, 2), generator=torch.Generator().manual_seed(6))
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model.train()(images)[1], labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(p.grad is not None for p in model.backbone.parameters())  # GroupNorm's affine included


def test_groupnorm_is_refused_where_it_does_not_apply():
    params = copy.deepcopy(config.load_params(REPO / "params.yaml"))
    params["model"]["norm"] = "group"
    params["model"]["bn_protocol"] = "reference"
    with pytest.raises(UserError, match="bn_protocol: learned"):
        config.validate(params)
    params["model"]["arch"] = "deeplabv2_resnet101"
    with pytest.raises(UserError, match="needs a mobilenetv3 arch"):
        config.validate(params)
    with pytest.raises(UserError, match="not available for deeplabv2_resnet101"):
        build_model("deeplabv2_resnet101", NUM_CLASSES, norm="group")
