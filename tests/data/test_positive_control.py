"""The positive control's shift (``prepare.shift: swap``; docs/positive_control.md): road and sky exchange
their appearance, the layout and the labels stay as they are."""

from dataclasses import replace

import numpy as np
import pytest

from globallocal.data.labels import label_id_to_train_id_lut
from globallocal.data.synthetic import SOURCE, TARGET_TRAIN, generate_example
from globallocal.data.synthetic.codes import ROAD, SKY
from globallocal.data.synthetic.shifts import swap_appearance
from support.configs import synthetic_config

SMALL = synthetic_config(seed=0, source_size=(128, 64), target_size=(128, 64))
TRAIN_ID = label_id_to_train_id_lut()
#: Target images with both road and sky (image 0 of this config has no sky: nothing to exchange).
INDICES = range(1, 7)


def example(split=TARGET_TRAIN, index=1, severity=None):
    config = SMALL if severity is None else replace(SMALL, shift="swap", shift_severity=severity)
    rgb, label_ids = generate_example(config, split, index)
    return rgb.astype(np.float32), TRAIN_ID[label_ids]


def class_means(rgb, train_ids):
    return {cls: rgb[train_ids == cls].mean(axis=0) for cls in (ROAD, SKY)}


def test_swap_appearance_exchanges_the_two_classes_moments_and_nothing_else():
    rng = np.random.default_rng(0)
    codes = np.zeros((20, 30), dtype=np.uint8)
    codes[:8] = SKY
    codes[8:14] = 3  # another class
    rgb = rng.random((20, 30, 3), dtype=np.float32)
    rgb[codes == SKY] = rgb[codes == SKY] * 0.1 + np.float32([0.5, 0.7, 0.9])
    out = swap_appearance(rgb, codes, ROAD, SKY, share=1.0)
    for cls, other in ((ROAD, SKY), (SKY, ROAD)):
        np.testing.assert_allclose(out[codes == cls].mean(axis=0), rgb[codes == other].mean(axis=0), atol=1e-5)
        np.testing.assert_allclose(out[codes == cls].std(axis=0), rgb[codes == other].std(axis=0), atol=1e-5)
    assert np.array_equal(out[codes == 3], rgb[codes == 3])
    halfway = swap_appearance(rgb, codes, ROAD, SKY, share=0.5)
    np.testing.assert_allclose(halfway[codes == ROAD].mean(axis=0), halfway[codes == SKY].mean(axis=0), atol=1e-5)
    no_road = np.where(codes == ROAD, 3, codes).astype(np.uint8)
    assert swap_appearance(rgb, no_road, ROAD, SKY, share=1.0) is rgb  # nothing to exchange with


@pytest.mark.parametrize("index", INDICES)
def test_the_target_keeps_its_layout_and_labels_and_road_looks_like_sky(index):
    plain_rgb, plain_ids = example(index=index)
    swapped_rgb, swapped_ids = example(index=index, severity=3)
    assert np.array_equal(plain_ids, swapped_ids)  # the layout and the label prior are unchanged
    plain, swapped = class_means(plain_rgb, plain_ids), class_means(swapped_rgb, swapped_ids)
    gap = np.abs(plain[ROAD] - plain[SKY]).max()
    assert gap > 40  # road and sky look different in the unshifted target (0-255 scale) ...
    # ... and exchanged in the shifted one (up to the lighting's vertical gradient, vignetting and blur)
    assert np.abs(swapped[ROAD] - plain[SKY]).max() < 0.3 * gap
    assert np.abs(swapped[SKY] - plain[ROAD]).max() < 0.3 * gap
    # Other classes move only by the lighting's contrast about the image mean (which the swap changes)
    others = ~np.isin(plain_ids, (ROAD, SKY))
    assert np.median(np.abs(swapped_rgb - plain_rgb).max(axis=2)[others]) <= 5


def test_the_source_is_not_shifted():
    config = replace(SMALL, shift="swap", shift_severity=3)
    assert np.array_equal(generate_example(config, SOURCE, 2)[0], generate_example(SMALL, SOURCE, 2)[0])
