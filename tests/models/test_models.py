"""Segmentation networks: shapes, ASPP heads, frozen BatchNorm, optimiser groups, weight loading."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from globallocal.errors import UserError
from globallocal.models import ARCHITECTURES, ASPPClassifier, build_model

NUM_CLASSES = 19
TINY_PX = 65
#: Input size for behaviour tests that do not look at shapes.
SMALL_PX = 33


def batchnorm_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {
        name: buffer.clone()
        for name, buffer in model.named_buffers()
        if "running_mean" in name or "running_var" in name
    }


@pytest.fixture(scope="module")
def resnet101():
    torch.manual_seed(0)
    return build_model("deeplabv2_resnet101", NUM_CLASSES)


# --- output shapes -------------------------------------------------------------------------


def test_resnet101_outputs_9x9_logits_for_65px_input(resnet101):
    aux, main = resnet101(torch.zeros(1, 3, TINY_PX, TINY_PX))
    assert aux.shape == (1, NUM_CLASSES, 9, 9)
    assert main.shape == (1, NUM_CLASSES, 9, 9)


def test_resnet101_caffe_max_pool_rounds_up_64px_to_9(resnet101):
    # 64 -> conv1 32 -> ceil-mode pool 17 -> layer2 9 (floor-mode pooling would give 8).
    aux, main = resnet101(torch.zeros(1, 3, 64, 96))
    assert aux.shape[-2:] == (9, 13)
    assert main.shape[-2:] == (9, 13)


MOBILENETS = ("mobilenetv3_large", "mobilenetv3_small")


@pytest.mark.parametrize("arch", MOBILENETS)
@pytest.mark.parametrize("stride, logits_hw", [(8, (9, 13)), (16, (5, 7))])
def test_mobilenet_logit_size_for_65x97_input_follows_the_output_stride(arch, stride, logits_hw):
    model = build_model(arch, NUM_CLASSES, output_stride=stride)
    aux, main = model(torch.zeros(2, 3, TINY_PX, 97))
    assert aux.shape == (2, NUM_CLASSES, *logits_hw)
    assert main.shape == (2, NUM_CLASSES, *logits_hw)


def test_mobilenet_small_heads_read_48_and_576_channels():
    model = build_model("mobilenetv3_small", NUM_CLASSES)
    assert model.aux_head.branches[0].in_channels == 48
    assert model.main_head.branches[0].in_channels == 576


def test_mobilenet_small_loads_a_torchvision_state_dict(tmp_path):
    reference = torchvision.models.mobilenet_v3_small(weights=None)
    path = tmp_path / "mobilenet_v3_small.pth"
    torch.save(reference.state_dict(), path)
    model = build_model("mobilenetv3_small", NUM_CLASSES, backbone_weights=path)
    assert torch.equal(model.backbone.features[4].block[0][0].weight, reference.features[4].block[0][0].weight)
    assert torch.equal(model.backbone.features[12][0].weight, reference.features[12][0].weight)


def test_learned_batchnorm_takes_the_momentum_asked_for():
    def momenta(model):
        return {m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)}

    assert momenta(build_model("mobilenetv3_small", NUM_CLASSES, bn_protocol="learned")) == {0.01}  # torchvision's
    assert momenta(build_model("mobilenetv3_small", NUM_CLASSES, bn_protocol="learned", bn_momentum=0.1)) == {0.1}
    assert momenta(build_model("mobilenetv3_large", NUM_CLASSES, bn_protocol="learned", bn_momentum=0.3)) == {0.3}


def test_mobilenet_aux_head_reads_112_channels_and_main_head_960():
    model = build_model("mobilenetv3_large", NUM_CLASSES)
    assert model.aux_head.branches[0].in_channels == 112
    assert model.main_head.branches[0].in_channels == 960


# --- DeepLab-v2 ResNet-101 structure ----------------------------------------------------------


def test_resnet101_has_3_4_23_3_bottleneck_blocks(resnet101):
    backbone = resnet101.backbone
    stages = (backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4)
    assert [len(stage) for stage in stages] == [3, 4, 23, 3]


def test_resnet101_heads_read_layer3_1024_and_layer4_2048_channels(resnet101):
    assert resnet101.aux_head.branches[0].in_channels == 1024
    assert resnet101.main_head.branches[0].in_channels == 2048


def test_resnet101_layer2_strides_in_first_1x1_conv_caffe_style(resnet101):
    first_block = resnet101.backbone.layer2[0]
    assert first_block.conv1.stride == (2, 2)
    assert first_block.conv2.stride == (1, 1)


def test_resnet101_layer3_dilates_2_and_layer4_dilates_4_without_stride(resnet101):
    for stage, dilation in ((resnet101.backbone.layer3, 2), (resnet101.backbone.layer4, 4)):
        for block in stage:
            assert block.conv1.stride == (1, 1)
            assert block.conv2.stride == (1, 1)
            assert block.conv2.dilation == (dilation, dilation)
            assert block.conv2.padding == (dilation, dilation)


# --- ASPP ----------------------------------------------------------------------------------


def test_aspp_has_four_3x3_branches_with_dilations_6_12_18_24():
    head = ASPPClassifier(8, NUM_CLASSES)
    assert len(head.branches) == 4
    assert [branch.dilation for branch in head.branches] == [(6, 6), (12, 12), (18, 18), (24, 24)]
    assert [branch.padding for branch in head.branches] == [(6, 6), (12, 12), (18, 18), (24, 24)]
    assert all(branch.kernel_size == (3, 3) for branch in head.branches)
    assert all(branch.out_channels == NUM_CLASSES for branch in head.branches)


def test_aspp_output_equals_sum_of_its_four_branches():
    torch.manual_seed(0)
    head = ASPPClassifier(4, 3)
    features = torch.randn(2, 4, 30, 31)
    expected = sum(
        F.conv2d(features, branch.weight, branch.bias, padding=rate, dilation=rate)
        for branch, rate in zip(head.branches, (6, 12, 18, 24))
    )
    assert torch.allclose(head(features), expected, atol=1e-6)


def test_aspp_center_taps_1_2_3_4_and_biases_half_give_10x_plus_2():
    head = ASPPClassifier(1, 1)
    with torch.no_grad():
        for index, branch in enumerate(head.branches):
            branch.weight.zero_()
            branch.weight[0, 0, 1, 1] = index + 1.0
            branch.bias.fill_(0.5)
    features = torch.arange(12.0).reshape(1, 1, 3, 4)
    assert torch.equal(head(features), 10.0 * features + 2.0)


def test_aspp_right_taps_look_6_12_18_24_pixels_right_with_zero_padding():
    head = ASPPClassifier(1, 1)
    with torch.no_grad():
        for branch in head.branches:
            branch.weight.zero_()
            branch.weight[0, 0, 1, 2] = 1.0
            branch.bias.zero_()
    features = torch.arange(1.0, 31.0).reshape(1, 1, 1, 30)  # values 1..30 along x
    logits = head(features)[0, 0, 0]
    # x=0 sees columns 6, 12, 18, 24 -> 7 + 13 + 19 + 25; x=10 sees 16, 22, 28 (34 is padding).
    assert logits[0].item() == 7.0 + 13.0 + 19.0 + 25.0
    assert logits[10].item() == 17.0 + 23.0 + 29.0
    assert logits[29].item() == 0.0


def test_aspp_weights_start_gaussian_with_std_0_01_and_zero_bias():
    torch.manual_seed(0)
    head = ASPPClassifier(256, NUM_CLASSES)
    weights = torch.cat([branch.weight.flatten() for branch in head.branches])
    assert abs(weights.mean().item()) < 1e-3
    assert weights.std().item() == pytest.approx(0.01, rel=0.02)
    assert all(torch.equal(branch.bias, torch.zeros(NUM_CLASSES)) for branch in head.branches)


# --- frozen BatchNorm ----------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_frozen_bn_statistics_do_not_change_in_train_mode(arch):
    torch.manual_seed(0)
    model = build_model(arch, NUM_CLASSES, bn_protocol="frozen")
    # Non-trivial statistics, so a BatchNorm in training mode would visibly move them.
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if "running_var" in name:
                buffer.uniform_(0.5, 2.0)
    before = batchnorm_buffers(model)
    model.train()
    model(torch.randn(2, 3, SMALL_PX, SMALL_PX) * 5 + 3)
    after = batchnorm_buffers(model)
    assert before.keys() == after.keys() and len(before) > 0
    assert all(torch.equal(before[name], after[name]) for name in before)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_frozen_bn_gives_same_logits_in_train_and_eval_mode(arch):
    torch.manual_seed(0)
    model = build_model(arch, NUM_CLASSES, bn_protocol="frozen")
    images = torch.randn(1, 3, SMALL_PX, SMALL_PX)
    with torch.no_grad():
        train_main = model.train()(images)[1]
        eval_main = model.eval()(images)[1]
    assert torch.equal(train_main, eval_main)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_frozen_bn_has_no_trainable_parameters(arch):
    model = build_model(arch, NUM_CLASSES, bn_protocol="frozen")
    norms = [module for module in model.modules() if isinstance(module, (nn.BatchNorm2d, FrozenBatchNorm2d))]
    assert len(norms) > 0
    assert all(isinstance(norm, FrozenBatchNorm2d) for norm in norms)
    assert all(len(list(norm.parameters())) == 0 for norm in norms)


def test_frozen_resnet101_trains_only_its_104_conv_weights_and_8_head_tensors(resnet101):
    # 1 stem conv + 33 blocks x 3 convs + 4 downsample convs; heads: 2 x 4 branches x (weight, bias).
    groups = resnet101.param_groups(1.0)
    assert [len(group["params"]) for group in groups] == [104, 16]
    assert all(param.dim() == 4 for param in groups[0]["params"])


def test_mobilenet_without_frozen_bn_updates_statistics_and_trains_affine():
    torch.manual_seed(0)
    model = build_model("mobilenetv3_large", NUM_CLASSES, bn_protocol="learned")
    before = batchnorm_buffers(model)
    model.train()
    model(torch.randn(2, 3, SMALL_PX, SMALL_PX))
    after = batchnorm_buffers(model)
    assert not torch.equal(before["backbone.features.0.1.running_mean"], after["backbone.features.0.1.running_mean"])
    assert model.backbone.features[0][1].weight.requires_grad


# --- optimiser groups -------------------------------------------------------------------------


def test_param_groups_give_backbone_base_lr_and_heads_ten_times_it():
    model = build_model("mobilenetv3_large", NUM_CLASSES)
    groups = model.param_groups(2.5e-4)
    assert [group["name"] for group in groups] == ["backbone", "heads"]
    assert [group["lr_mult"] for group in groups] == [1.0, 10.0]
    assert groups[0]["lr"] == 2.5e-4
    assert groups[1]["lr"] == pytest.approx(2.5e-3, rel=1e-12)


def test_param_groups_cover_every_trainable_parameter_exactly_once():
    model = build_model("mobilenetv3_large", NUM_CLASSES, bn_protocol="learned")
    frozen = model.backbone.features[0][0].weight
    frozen.requires_grad_(False)
    grouped = [id(param) for group in model.param_groups(1.0) for param in group["params"]]
    trainable = {id(param) for param in model.parameters() if param.requires_grad}
    assert len(grouped) == len(set(grouped))
    assert set(grouped) == trainable
    assert id(frozen) not in grouped


def test_param_groups_put_head_parameters_in_heads_group():
    model = build_model("mobilenetv3_large", NUM_CLASSES)
    heads = {id(param) for group in model.param_groups(1.0) if group["name"] == "heads" for param in group["params"]}
    assert heads == {id(param) for param in [*model.aux_head.parameters(), *model.main_head.parameters()]}


def test_param_groups_build_an_sgd_optimizer():
    model = build_model("mobilenetv3_large", NUM_CLASSES)
    optimizer = torch.optim.SGD(model.param_groups(0.1), lr=0.1, momentum=0.9)
    assert [group["lr"] for group in optimizer.param_groups] == [0.1, 1.0]


# --- input normalisation ------------------------------------------------------------------------


def test_resnet101_without_weights_expects_caffe_bgr_input(resnet101):
    assert resnet101.input_normalization == "caffe_bgr"


def test_mobilenet_expects_imagenet_input():
    assert build_model("mobilenetv3_large", NUM_CLASSES).input_normalization == "imagenet"


# --- loading backbone weights --------------------------------------------------------------------


def test_torchvision_mobilenet_state_dict_loads_into_backbone(tmp_path):
    source = torchvision.models.mobilenet_v3_large(weights=None)
    with torch.no_grad():
        source.features[0][0].weight[0, 0, 0, 0] = 0.125
        source.features[16][1].running_mean[3] = -1.5
    path = tmp_path / "mobilenet_v3_large.pth"
    torch.save(source.state_dict(), path)  # includes classifier.*, which must be skipped
    model = build_model("mobilenetv3_large", NUM_CLASSES, backbone_weights=path)
    assert model.backbone.features[0][0].weight[0, 0, 0, 0].item() == 0.125
    assert model.backbone.features[16][1].running_mean[3].item() == -1.5


def test_loading_backbone_weights_keeps_heads_untouched(tmp_path):
    path = tmp_path / "mobilenet_v3_large.pth"
    torch.save(torchvision.models.mobilenet_v3_large(weights=None).state_dict(), path)
    torch.manual_seed(0)
    expected = build_model("mobilenetv3_large", NUM_CLASSES).main_head.branches[2].weight.clone()
    torch.manual_seed(0)
    model = build_model("mobilenetv3_large", NUM_CLASSES, backbone_weights=path)
    assert torch.equal(model.main_head.branches[2].weight, expected)


def test_deeplab_caffe_checkpoint_with_scale_prefix_loads_and_keeps_caffe_bgr(tmp_path, resnet101):
    state = {f"Scale.{key}": value.clone() for key, value in resnet101.backbone.state_dict().items()}
    state["Scale.layer4.2.conv3.weight"][5, 7, 0, 0] = 0.375
    state["Scale.layer5.conv2d_list.0.weight"] = torch.zeros(21, 2048, 3, 3)  # VOC head: skipped
    path = tmp_path / "DeepLab_resnet_pretrained_imagenet.pth"
    torch.save(state, path)
    model = build_model("deeplabv2_resnet101", NUM_CLASSES, backbone_weights=path)
    assert model.backbone.layer4[2].conv3.weight[5, 7, 0, 0].item() == 0.375
    assert model.input_normalization == "caffe_bgr"


def test_torchvision_resnet101_state_dict_loads_and_switches_to_imagenet_input(tmp_path):
    source = torchvision.models.resnet101(weights=None)
    with torch.no_grad():
        source.layer3[22].bn2.running_var[9] = 4.25
    path = tmp_path / "resnet101.pth"
    torch.save(source.state_dict(), path)
    model = build_model("deeplabv2_resnet101", NUM_CLASSES, backbone_weights=path)
    assert model.backbone.layer3[22].bn2.running_var[9].item() == 4.25
    assert model.input_normalization == "imagenet"


def test_missing_weights_file_raises_user_error_naming_path(tmp_path):
    path = tmp_path / "weights" / "resnet101.pth"
    with pytest.raises(UserError, match="by hand") as error:
        build_model("mobilenetv3_large", NUM_CLASSES, backbone_weights=path)
    assert str(path) in str(error.value)


def test_checkpoint_missing_backbone_keys_raises_user_error_listing_them(tmp_path):
    state = torchvision.models.mobilenet_v3_large(weights=None).state_dict()
    state = {key: value for key, value in state.items() if not key.startswith("features.16.")}
    path = tmp_path / "truncated.pth"
    torch.save(state, path)
    with pytest.raises(UserError, match=r"lack 5 of the .*features\.16\.0\.weight"):
        build_model("mobilenetv3_large", NUM_CLASSES, backbone_weights=path)


def test_checkpoint_with_wrong_tensor_shape_raises_user_error(tmp_path):
    state = torchvision.models.mobilenet_v3_large(weights=None).state_dict()
    state["features.16.0.weight"] = torch.zeros(10, 160, 1, 1)
    path = tmp_path / "wrong.pth"
    torch.save(state, path)
    with pytest.raises(UserError, match=r"features\.16\.0\.weight has shape \(10, 160, 1, 1\)"):
        build_model("mobilenetv3_large", NUM_CLASSES, backbone_weights=path)


def test_file_that_is_not_a_checkpoint_raises_user_error(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("not a checkpoint\n")
    with pytest.raises(UserError, match="Cannot read backbone weights"):
        build_model("mobilenetv3_large", NUM_CLASSES, backbone_weights=path)


# --- configuration errors ----------------------------------------------------------------------


def test_unknown_arch_raises_user_error_listing_allowed_names():
    with pytest.raises(UserError, match="deeplabv2_resnet101, mobilenetv3_large"):
        build_model("resnet50", NUM_CLASSES)


def test_resnet101_rejects_output_stride_16():
    with pytest.raises(UserError, match="output_stride 16"):
        build_model("deeplabv2_resnet101", NUM_CLASSES, output_stride=16)


def test_mobilenet_rejects_output_stride_32():
    with pytest.raises(UserError, match=r"output_stride 32 .*\(8, 16\)"):
        build_model("mobilenetv3_large", NUM_CLASSES, output_stride=32)
