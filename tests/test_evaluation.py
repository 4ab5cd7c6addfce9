"""Specification of the evaluation protocol (docs/method.md, "Evaluation protocol")."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cityscapes_eval
from PIL import Image
from torch import nn

from globallocal.data.labels import CLASS_NAMES, NUM_CLASSES, label_id_to_train_id_lut
from globallocal.errors import UserError
from globallocal.evaluation.metrics import (
    EvaluationResult,
    class_map,
    confusion_matrix,
    entropy_map,
    evaluate,
    iou_per_class,
    mean_iou,
    official_cityscapes_evaluation,
    predict,
    same_size_batches,
)

# 2x3 image, 3 classes, one ignored pixel (its prediction, 2, must not count as a false positive).
LABEL_2X3 = np.array([[0, 0, 1], [1, 2, 255]])
PRED_2X3 = np.array([[0, 0, 1], [0, 1, 2]])


class ConstantLogitsModel(nn.Module):
    """Returns the same (K, h, w) logits for every image, as (aux, main)."""

    def __init__(self, main_logits: torch.Tensor):
        super().__init__()
        self.register_buffer("main_logits", main_logits)

    def forward(self, x):
        main = self.main_logits.expand(x.shape[0], -1, -1, -1)
        return torch.zeros_like(main), main


class PooledClassCodeModel(nn.Module):
    """Reads a class code from image channel 0, average-pooled 8x: logits at 1/8 of the input
    resolution, right where the code is uniform and mixed at boundaries.

    ``class_bias`` suppresses some classes so the agreement test has classes that are never
    predicted (FN only) and classes that are undefined (absent everywhere).
    """

    def __init__(self, class_bias: torch.Tensor):
        super().__init__()
        self.register_buffer("class_codes", torch.arange(NUM_CLASSES, dtype=torch.float32).reshape(1, -1, 1, 1))
        self.register_buffer("class_bias", class_bias.reshape(1, -1, 1, 1))

    def forward(self, x):
        code = nn.functional.avg_pool2d(x[:, :1], 8)
        main = -((code - self.class_codes) ** 2) + self.class_bias
        return main, main


def one_hot_logits(train_ids: list[list[int]], num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """(h, w) trainIds -> (1, K, h, w) logits whose argmax is those ids."""
    ids = torch.tensor(train_ids)
    return 10.0 * nn.functional.one_hot(ids, num_classes).permute(2, 0, 1).float()[None]


def test_confusion_matrix_counts_ground_truth_rows_and_prediction_columns():
    expected = np.array([[2, 0, 0], [1, 1, 0], [0, 1, 0]])
    confusion = confusion_matrix(PRED_2X3, LABEL_2X3, num_classes=3)
    np.testing.assert_array_equal(confusion, expected)
    assert confusion.dtype == np.int64


def test_confusion_matrix_skips_ignore_pixels():
    assert confusion_matrix(PRED_2X3, LABEL_2X3, num_classes=3).sum() == 5


def test_confusion_matrix_accepts_torch_tensors():
    confusion = confusion_matrix(torch.from_numpy(PRED_2X3), torch.from_numpy(LABEL_2X3), 3)
    np.testing.assert_array_equal(confusion, [[2, 0, 0], [1, 1, 0], [0, 1, 0]])


def test_iou_is_tp_over_tp_fp_fn():
    # class 0: TP 2, FP 1, FN 0; class 1: TP 1, FP 1, FN 1; class 2: TP 0, FP 0, FN 1.
    iou = iou_per_class(confusion_matrix(PRED_2X3, LABEL_2X3, num_classes=3))
    np.testing.assert_allclose(iou, [2 / 3, 1 / 3, 0.0])


def test_mean_iou_of_hand_computed_case():
    iou = iou_per_class(confusion_matrix(PRED_2X3, LABEL_2X3, num_classes=3))
    assert mean_iou(iou) == pytest.approx(1 / 3)


def test_class_absent_from_label_and_prediction_has_undefined_iou():
    iou = iou_per_class(confusion_matrix(PRED_2X3, LABEL_2X3, num_classes=4))
    assert math.isnan(iou[3])


def test_undefined_classes_are_excluded_from_the_mean():
    iou = iou_per_class(confusion_matrix(PRED_2X3, LABEL_2X3, num_classes=4))
    assert mean_iou(iou) == pytest.approx(1 / 3)  # not (2/3 + 1/3 + 0) / 4


def test_mean_iou_over_a_class_subset():
    assert mean_iou(np.array([1.0, 0.5, 0.0, np.nan]), class_ids=[0, 1, 3]) == pytest.approx(0.75)


def test_mean_iou_with_no_defined_class_is_nan():
    assert math.isnan(mean_iou(np.array([np.nan, np.nan])))


def _synthia_style_result() -> EvaluationResult:
    """IoU 1 everywhere except terrain, truck, train (0) and wall, fence, pole (0.25)."""
    iou = np.ones(NUM_CLASSES)
    for name in ("terrain", "truck", "train"):
        iou[CLASS_NAMES.index(name)] = 0.0
    for name in ("wall", "fence", "pole"):
        iou[CLASS_NAMES.index(name)] = 0.25
    return EvaluationResult(confusion=np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64), iou=iou)


def test_miou_16_drops_terrain_truck_train():
    assert _synthia_style_result().miou_16 == pytest.approx((13 + 3 * 0.25) / 16)


def test_miou_13_also_drops_wall_fence_pole():
    assert _synthia_style_result().miou_13 == pytest.approx(1.0)


def test_to_metrics_reports_rounded_percent_and_synthia_subsets():
    metrics = _synthia_style_result().to_metrics(synthia=True)
    # 19-class mean: (13 + 0.75) / 19 = 0.723684...; 16-class: 13.75 / 16 = 0.859375.
    assert metrics["miou"] == 72.37
    assert metrics["miou_16"] == 85.94
    assert metrics["miou_13"] == 100.0
    assert metrics["per_class_iou"]["wall"] == 25.0
    assert list(metrics["per_class_iou"]) == list(CLASS_NAMES)


def test_to_metrics_without_synthia_has_no_subset_keys_and_none_for_undefined():
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    confusion[0, 0] = 3
    confusion[0, 1] = 1
    metrics = EvaluationResult.from_confusion(confusion).to_metrics()
    assert set(metrics) == {"miou", "per_class_iou"}
    assert metrics["per_class_iou"]["road"] == 75.0
    assert metrics["per_class_iou"]["sidewalk"] == 0.0
    assert metrics["per_class_iou"]["sky"] is None
    assert metrics["miou"] == 37.5


def test_entropy_of_uniform_distribution_is_one():
    uniform = torch.full((1, 4, 2, 3), 0.25)
    torch.testing.assert_close(entropy_map(uniform), torch.ones(1, 2, 3))


def test_entropy_of_one_hot_distribution_is_zero():
    one_hot = one_hot_logits([[0, 3], [2, 1]], num_classes=4).clamp(max=1.0)
    torch.testing.assert_close(entropy_map(one_hot), torch.zeros(1, 2, 2))


def test_entropy_is_normalised_by_log_num_classes():
    prob = torch.tensor([0.25, 0.75]).reshape(1, 2, 1, 1)
    expected = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75)) / math.log(2)  # 0.811278
    assert entropy_map(prob).item() == pytest.approx(expected, abs=1e-6)


def test_predict_upsamples_logits_with_align_corners_before_softmax():
    # class-0 logit ramps 0 -> 4 over two pixels; align_corners=True gives 0, 1, 2, 3, 4 at width 5.
    logits = torch.tensor([[[[0.0, 4.0]], [[0.0, 0.0]]]])
    probs = predict(ConstantLogitsModel(logits), torch.zeros(1, 3, 1, 2), out_size_hw=(1, 5))
    expected = torch.sigmoid(torch.arange(5.0))
    torch.testing.assert_close(probs[0, 0, 0], expected)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(1, 1, 5))


def test_prediction_has_the_label_resolution_when_logits_are_at_one_eighth():
    image = torch.rand(3, 16, 24)
    sample = {"image": image, "label": torch.zeros(16, 24, dtype=torch.long), "name": "a/a_0_1_x.png"}
    model = PooledClassCodeModel(torch.zeros(NUM_CLASSES))
    assert model(image[None])[1].shape[-2:] == (2, 3)
    _, kept = evaluate(model, [sample], torch.device("cpu"), NUM_CLASSES, num_keep=1)
    assert kept[0]["pred"].shape == (16, 24)
    assert kept[0]["entropy"].shape == (16, 24)


def test_evaluate_keeps_the_first_samples_as_uint8_predictions_and_float16_entropy():
    dataset = [
        {"image": torch.zeros(3, 2, 2), "label": torch.zeros(2, 2, dtype=torch.long),
         "name": f"c/c_000000_00000{i}_leftImg8bit.png"}
        for i in range(3)
    ]
    model = ConstantLogitsModel(one_hot_logits([[0, 1], [18, 10]]))
    _, kept = evaluate(model, dataset, torch.device("cpu"), NUM_CLASSES, num_keep=2)
    assert [sample["name"] for sample in kept] == [dataset[0]["name"], dataset[1]["name"]]
    assert kept[0]["pred"].dtype == np.uint8
    np.testing.assert_array_equal(kept[0]["pred"], [[0, 1], [18, 10]])
    assert kept[0]["entropy"].dtype == np.float16


def test_evaluate_accumulates_the_confusion_over_images():
    dataset = [
        {"image": torch.zeros(3, 2, 2), "label": torch.tensor([[0, 1], [255, 10]]), "name": "c/c_0_1_x.png"},
        {"image": torch.zeros(3, 2, 2), "label": torch.tensor([[0, 0], [18, 18]]), "name": "c/c_0_2_x.png"},
    ]
    model = ConstantLogitsModel(one_hot_logits([[0, 1], [18, 10]]))
    result, _ = evaluate(model, dataset, torch.device("cpu"), NUM_CLASSES)
    # road: TP 2, FN 1 (predicted sidewalk); bicycle: TP 1, FN 1 (predicted sky).
    assert result.confusion.sum() == 7
    assert result.iou[0] == pytest.approx(2 / 3)
    assert result.iou[CLASS_NAMES.index("bicycle")] == pytest.approx(1 / 2)
    assert result.iou[CLASS_NAMES.index("sky")] == pytest.approx(1 / 2)


def test_same_size_batches_keep_the_order_and_start_a_new_batch_where_the_size_changes():
    sizes = [(4, 8), (4, 8), (4, 8), (6, 8), (4, 8)]
    dataset = [{"image": torch.zeros(3, h, w), "name": str(i)} for i, (h, w) in enumerate(sizes)]
    batches = [[item["name"] for item in batch] for batch in same_size_batches(dataset, batch_size=2)]
    assert batches == [["0", "1"], ["2"], ["3"], ["4"]]


def test_evaluate_in_batches_scores_each_image_against_its_own_label_as_one_image_at_a_time_does():
    # Images of two sizes (two batches) with labels at other resolutions than their images; a model whose
    # outputs do not depend on the batch, so the batched confusion must equal the per-image sum exactly.
    generator = torch.Generator().manual_seed(0)
    dataset = []
    for index, (image_hw, label_hw) in enumerate([((16, 24), (32, 48)), ((16, 24), (16, 24)), ((24, 16), (48, 32))]):
        codes = torch.randint(0, NUM_CLASSES, (1, image_hw[0] // 8, image_hw[1] // 8), generator=generator)
        image = nn.functional.interpolate(codes[None].float(), size=image_hw)[0].expand(3, -1, -1).clone()
        label = torch.randint(0, NUM_CLASSES, label_hw, generator=generator)
        dataset.append({"image": image, "label": label, "name": f"c/c_0_{index}_x.png"})
    model = PooledClassCodeModel(torch.zeros(NUM_CLASSES))
    batched, kept = evaluate(model, dataset, torch.device("cpu"), NUM_CLASSES, num_keep=3)
    singles = [evaluate(model, [item], torch.device("cpu"), NUM_CLASSES)[0].confusion for item in dataset]
    np.testing.assert_array_equal(batched.confusion, sum(singles))
    assert batched.confusion.sum() == 32 * 48 + 16 * 24 + 48 * 32
    assert [sample["pred"].shape for sample in kept] == [(32, 48), (16, 24), (48, 32)]


def test_evaluate_puts_the_model_in_eval_mode():
    model = ConstantLogitsModel(one_hot_logits([[0]])).train()
    sample = {"image": torch.zeros(3, 1, 1), "label": torch.zeros(1, 1, dtype=torch.long), "name": "c/c_0_1_x.png"}
    evaluate(model, [sample], torch.device("cpu"), NUM_CLASSES)
    assert not model.training


def test_exported_labelid_and_colour_pngs_have_exact_names_modes_and_values(tmp_path):
    name = "aachen/aachen_000000_000019_leftImg8bit.png"
    sample = {"image": torch.zeros(3, 2, 2), "label": torch.zeros(2, 2, dtype=torch.long), "name": name}
    model = ConstantLogitsModel(one_hot_logits([[0, 1], [18, 10]]))  # road, sidewalk, bicycle, sky
    evaluate(model, [sample], torch.device("cpu"), NUM_CLASSES,
             labelid_dir=tmp_path / "labelIds", color_dir=tmp_path / "color")

    assert sorted(p.name for p in (tmp_path / "labelIds").iterdir()) == ["aachen_000000_000019_leftImg8bit.png"]
    label_ids = Image.open(tmp_path / "labelIds" / "aachen_000000_000019_leftImg8bit.png")
    assert label_ids.mode == "L"
    np.testing.assert_array_equal(np.array(label_ids), [[7, 8], [33, 23]])

    color = Image.open(tmp_path / "color" / "aachen_000000_000019_leftImg8bit.png")
    assert color.mode == "RGB"
    np.testing.assert_array_equal(
        np.array(color), [[[128, 64, 128], [244, 35, 232]], [[119, 11, 32], [70, 130, 180]]]
    )


def test_colour_folder_inside_labelid_folder_is_refused(tmp_path):
    sample = {"image": torch.zeros(3, 1, 1), "label": torch.zeros(1, 1, dtype=torch.long), "name": "c/c_0_1_x.png"}
    with pytest.raises(UserError, match="colour prediction folder"):
        evaluate(ConstantLogitsModel(one_hot_logits([[0]])), [sample], torch.device("cpu"), NUM_CLASSES,
                 labelid_dir=tmp_path / "pred", color_dir=tmp_path / "pred" / "color")


# --- agreement with the official Cityscapes evaluation -------------------------------------------

IMAGE_HEIGHT_PX, IMAGE_WIDTH_PX = 32, 64
VAL_FRAMES = ("frankfurt_000000_000294", "munster_000001_000019")
BLOCK_PX = 8  # one class per cell of the fake model's 1/8-resolution output


def _label_ids_image(seed: int) -> np.ndarray:
    """(32, 64) labelIds: 8x8 blocks of train classes plus ignore ids (0 unlabeled, 1 ego vehicle, 4 static,
    5 dynamic, 9 parking) so ignore handling is exercised."""
    rng = np.random.default_rng(seed)
    present_ids = np.array([0, 1, 4, 5, 9, 7, 8, 11, 17, 21, 23, 24, 26, 33])
    blocks = rng.choice(present_ids, size=(IMAGE_HEIGHT_PX // BLOCK_PX, IMAGE_WIDTH_PX // BLOCK_PX))
    return np.kron(blocks, np.ones((BLOCK_PX, BLOCK_PX), dtype=np.int64)).astype(np.uint8)


def _tiny_cityscapes_val(root) -> list[dict]:
    """Write gtFine/val in the real layout and return the matching in-memory dataset."""
    lut = label_id_to_train_id_lut()
    dataset = []
    for seed, frame in enumerate(VAL_FRAMES):
        city = frame.split("_")[0]
        gt_dir = root / "gtFine" / "val" / city
        gt_dir.mkdir(parents=True, exist_ok=True)
        label_ids = _label_ids_image(seed)
        Image.fromarray(label_ids).save(gt_dir / f"{frame}_gtFine_labelIds.png")
        train_ids = torch.from_numpy(lut[label_ids]).long()
        # channel 0 carries the class code the fake model reads; ignore pixels read as class 19.
        image = train_ids.clamp(max=NUM_CLASSES).float().expand(3, -1, -1)
        dataset.append({"image": image, "label": train_ids,
                        "name": f"{city}/{frame}_leftImg8bit.png"})
    return dataset


def _agreement_model() -> PooledClassCodeModel:
    # Suppress classes so some ground-truth classes are never predicted (IoU 0) and some classes
    # occur nowhere (undefined).
    class_bias = torch.zeros(NUM_CLASSES)
    class_bias[[2, 6, 9, 12, 14, 15, 16, 17]] = -100.0
    return PooledClassCodeModel(class_bias)


def test_iou_agrees_with_official_cityscapes_evaluation(tmp_path):
    dataset = _tiny_cityscapes_val(tmp_path / "cityscapes")
    labelid_dir = tmp_path / "pred_labelIds"
    result, _ = evaluate(_agreement_model(), dataset, torch.device("cpu"), NUM_CLASSES,
                         labelid_dir=labelid_dir, color_dir=tmp_path / "pred_color")

    official = official_cityscapes_evaluation(tmp_path / "cityscapes", "val", labelid_dir)
    ours = result.to_metrics()["per_class_iou"]

    assert list(official) == list(CLASS_NAMES)
    # the fixture must exercise defined, zero and undefined IoUs
    assert any(value is None for value in ours.values())
    assert any(value == 0.0 for value in ours.values())
    assert any(value is not None and value > 0.0 for value in ours.values())
    for name in CLASS_NAMES:
        if ours[name] is None:
            assert math.isnan(official[name]), name
        else:
            assert official[name] == pytest.approx(ours[name], abs=1e-6), name


def test_official_evaluation_is_quiet_and_restores_the_official_settings(tmp_path, capsys):
    dataset = _tiny_cityscapes_val(tmp_path / "cityscapes")
    evaluate(_agreement_model(), dataset, torch.device("cpu"), NUM_CLASSES, labelid_dir=tmp_path / "pred")
    settings_before = dict(vars(cityscapes_eval.args))

    official_cityscapes_evaluation(tmp_path / "cityscapes", "val", tmp_path / "pred")

    assert capsys.readouterr().out == ""
    assert vars(cityscapes_eval.args) == settings_before


def test_official_evaluation_with_two_predictions_for_one_image_raises_user_error(tmp_path):
    dataset = _tiny_cityscapes_val(tmp_path / "cityscapes")
    evaluate(_agreement_model(), dataset, torch.device("cpu"), NUM_CLASSES, labelid_dir=tmp_path / "pred")
    stray = tmp_path / "pred" / "old" / "frankfurt_000000_000294_leftImg8bit.png"
    stray.parent.mkdir()
    stray.write_bytes((tmp_path / "pred" / stray.name).read_bytes())
    with pytest.raises(UserError, match="Found multiple predictions"):
        official_cityscapes_evaluation(tmp_path / "cityscapes", "val", tmp_path / "pred")


def test_official_evaluation_without_ground_truth_names_the_searched_path(tmp_path):
    (tmp_path / "pred").mkdir()
    with pytest.raises(UserError, match="gtFine/val"):
        official_cityscapes_evaluation(tmp_path / "missing", "val", tmp_path / "pred")


def test_class_map_is_argmax_over_classes_with_the_first_maximum_on_ties():
    scores = torch.tensor([[[[0.1, 0.5]], [[0.7, 0.5]], [[0.2, 0.0]]]])  # (1, 3, 1, 2); a tie at pixel 2
    assert class_map(scores).tolist() == [[[1, 0]]]
    torch.manual_seed(0)
    many = torch.randn(2, 19, 7, 9)
    assert torch.equal(class_map(many), many.argmax(dim=1))
