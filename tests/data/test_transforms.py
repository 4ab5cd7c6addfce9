"""Image and label transforms: resizing (labels NEAREST, never a new id), input normalisation and its inverse."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from globallocal.data.transforms import resize_image, resize_label, to_display_rgb, to_input_tensor
from globallocal.errors import UserError

PIXEL_RGB = (10, 20, 30)


def _solid_rgb(width: int, height: int, rgb=PIXEL_RGB) -> np.ndarray:
    return np.tile(np.array(rgb, dtype=np.uint8), (height, width, 1))


def test_caffe_bgr_swaps_channels_and_subtracts_caffe_mean():
    tensor = to_input_tensor(_solid_rgb(1, 1), "caffe_bgr")
    assert tensor.shape == (3, 1, 1) and tensor.dtype == torch.float32
    expected = [30 - 104.00698793, 20 - 116.66876762, 10 - 122.67891434]
    np.testing.assert_allclose(tensor[:, 0, 0].numpy(), expected, atol=1e-5)


def test_imagenet_scales_to_unit_range_then_standardises():
    tensor = to_input_tensor(_solid_rgb(1, 1, (255, 0, 51)), "imagenet")
    expected = [(1.0 - 0.485) / 0.229, (0.0 - 0.456) / 0.224, (0.2 - 0.406) / 0.225]
    np.testing.assert_allclose(tensor[:, 0, 0].numpy(), expected, atol=1e-5)


def test_tf_lite_subtracts_127_and_divides_by_128_per_channel():
    tensor = to_input_tensor(_solid_rgb(1, 1, (255, 0, 127)), "tf_lite")
    np.testing.assert_allclose(tensor[:, 0, 0].numpy(), [128 / 128, -127 / 128, 0.0], atol=1e-7)


@pytest.mark.parametrize("normalization", ["caffe_bgr", "imagenet", "tf_lite"])
def test_display_rgb_inverts_input_tensor_exactly(normalization):
    rgb = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    back = to_display_rgb(to_input_tensor(rgb, normalization), normalization)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, rgb)


def test_unknown_normalization_raises_user_error_listing_choices():
    with pytest.raises(UserError, match="'bgr'.*caffe_bgr, imagenet"):
        to_input_tensor(_solid_rgb(1, 1), "bgr")


def test_resize_image_takes_width_then_height():
    assert resize_image(_solid_rgb(4, 3), (8, 2)).shape == (2, 8, 3)


def test_resize_label_upscaling_repeats_each_id():
    label = np.array([[0, 13], [255, 7]], dtype=np.uint8)
    expected = [[0, 0, 13, 13], [0, 0, 13, 13], [255, 255, 7, 7], [255, 255, 7, 7]]
    np.testing.assert_array_equal(resize_label(label, (4, 4)), expected)


def test_resize_label_never_creates_new_ids():
    label = np.random.default_rng(2).choice(np.array([0, 13, 255], dtype=np.uint8), (17, 23))
    resized = resize_label(label, (10, 7))
    assert resized.shape == (7, 10)
    assert set(np.unique(resized)) <= {0, 13, 255}
