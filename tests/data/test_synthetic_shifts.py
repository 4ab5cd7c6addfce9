"""The target shifts of the shift grid: target only, deterministic, and each changes what it says."""

import json
import math
from dataclasses import replace

import cv2
import numpy as np
import pytest

from globallocal import config
from globallocal.data.labels import label_id_to_train_id_lut
from globallocal.data.synthetic import SHIFTS, SOURCE, TARGET_TRAIN, TARGET_VAL, SyntheticConfig, generate_example
from globallocal.data.synthetic import generate_benchmark
from globallocal.data.synthetic.codes import BUILDING, CAR, DETAIL_LAMP, DETAIL_NONE, ROAD, SKY, VEGETATION
from globallocal.data.synthetic.geometry import Scene, draw_camera
from globallocal.data.synthetic.shifts import (
    FOG_AIRLIGHT_RGB,
    TargetShift,
    apply_fog,
    at_sensor,
    depth_map,
    dusk,
    rotate_hue,
)
from globallocal.errors import UserError
from support.configs import synthetic_config

SMALL = synthetic_config(seed=0, source_size=(128, 64), target_size=(128, 64))
SHIFTED = [name for name in SHIFTS if name != "none"]
TRAIN_ID = label_id_to_train_id_lut()


def example(shift: str = "none", severity: int = 1, index: int = 1, split: str = TARGET_TRAIN):
    return generate_example(replace(SMALL, shift=shift, shift_severity=severity), split, index)


def near(mask: np.ndarray, radius_px: int = 3) -> np.ndarray:
    """mask grown by radius_px: what the camera blur (sigma < 1 px here) can reach."""
    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * radius_px + 1,) * 2, np.uint8)) > 0


# ---- every shift ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shift", SHIFTED)
def test_a_shift_is_deterministic_per_seed(shift):
    first, second = example(shift, 2), example(shift, 2)
    assert first[0].tobytes() == second[0].tobytes() and first[1].tobytes() == second[1].tobytes()


@pytest.mark.parametrize("shift", SHIFTED)
def test_each_severity_gives_a_different_image(shift):
    images = [example(shift, severity, index=3)[0] for severity in (1, 2, 3)]
    unshifted = example(index=3)[0]
    for i, image in enumerate(images):
        assert not np.array_equal(image, unshifted)
        for other in images[i + 1:]:
            assert not np.array_equal(image, other)


@pytest.mark.parametrize("shift", SHIFTED)
def test_a_shift_leaves_the_source_byte_identical(shift):
    shifted, unshifted = example(shift, 3, split=SOURCE), example(split=SOURCE)
    assert shifted[0].tobytes() == unshifted[0].tobytes() and shifted[1].tobytes() == unshifted[1].tobytes()


@pytest.mark.parametrize("split", [TARGET_TRAIN, TARGET_VAL])
def test_a_shift_changes_target_train_and_val_alike(split):
    assert not np.array_equal(example("fog", 1, split=split)[0], example(split=split)[0])


def test_none_ignores_the_severity():
    assert example("none", 3)[0].tobytes() == example("none", 1)[0].tobytes()


@pytest.mark.parametrize("shift", ["fog", "lowlight", "season", "carpaint"])
def test_an_appearance_shift_keeps_the_labels(shift):
    assert np.array_equal(example(shift, 3)[1], example()[1])


# ---- fog -----------------------------------------------------------------------------------------


def test_fog_follows_koschmieders_law():
    rgb = np.zeros((1, 3, 3), np.float32)
    depth = np.array([[0.0, 70.0, np.inf]], np.float32)  # at the visibility, 5 % of the contrast is left
    fogged = apply_fog(rgb, depth, visibility_m=70.0, airlight_rgb=(1.0, 0.5, 0.0))
    np.testing.assert_allclose(fogged[0, 0], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(fogged[0, 1], [0.95, 0.475, 0.0], atol=1e-6)
    np.testing.assert_allclose(fogged[0, 2], [1.0, 0.5, 0.0])


def test_depth_is_the_ground_depth_of_a_pixels_row_or_of_the_ground_it_stands_on():
    canvas = np.array([[SKY, SKY], [BUILDING, SKY], [BUILDING, ROAD], [ROAD, ROAD]], np.uint8)
    zeros = np.zeros_like(canvas)
    scene = Scene(canvas, zeros, zeros, zeros, horizon_px=1.0, focal_px=10.0, camera_height_m=1.5)
    # ground depth of row r: 1.5 m * 10 px / (r - 1) px -> row 2: 15 m, row 3: 7.5 m
    expected = [[math.inf, math.inf], [7.5, math.inf], [7.5, 15.0], [7.5, 7.5]]
    np.testing.assert_allclose(depth_map(scene), expected)


def test_fog_grows_with_depth_on_the_road():
    clear, labels = example(index=0)
    road = TRAIN_ID[labels] == ROAD
    rows = np.nonzero(road)[0]
    row_index = np.arange(road.shape[0])[:, None]
    far = road & (row_index <= np.quantile(rows, 0.2))  # the road's top rows: farthest from the camera
    close = road & (row_index >= np.quantile(rows, 0.8))
    changes = []
    for severity in (1, 2, 3):
        foggy, _ = example("fog", severity, index=0)
        change = np.abs(foggy.astype(int) - clear.astype(int)).sum(-1)
        assert change[far].mean() > 1.4 * change[close].mean()
        changes.append(change[far].mean())
    assert changes[0] < changes[1] < changes[2]  # 65.8 < 121.8 < 189.9 grey levels (sum over channels)


# ---- class-conditional recolouring ----------------------------------------------------------------


def test_season_recolours_only_vegetation_towards_orange():
    clear, labels = example(index=0)
    vegetation = TRAIN_ID[labels] == VEGETATION
    red_minus_green = []
    for severity in (1, 2, 3):
        autumn, _ = example("season", severity, index=0)
        assert np.array_equal(autumn[~near(vegetation)], clear[~near(vegetation)])
        pixels = autumn[vegetation].astype(int)
        red_minus_green.append((pixels[:, 0] - pixels[:, 1]).mean())
    green = clear[vegetation].astype(int)
    # measured: -25.3 (green) -> -5.7, 8.3, 26.3 grey levels
    assert (green[:, 0] - green[:, 1]).mean() < -20
    assert red_minus_green[0] < red_minus_green[1] < red_minus_green[2] and red_minus_green[2] > 20


def test_carpaint_repaints_only_cars_in_more_saturated_colours():
    clear, labels = example(index=0)
    cars = TRAIN_ID[labels] == CAR

    def car_saturation(rgb):
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[..., 1][cars].mean()

    saturations = []
    for severity in (1, 2, 3):
        painted, _ = example("carpaint", severity, index=0)
        assert np.array_equal(painted[~near(cars)], clear[~near(cars)])
        saturations.append(car_saturation(painted))
    # measured: 83.3 -> 92.3, 100.9, 154.9 (of 255)
    assert car_saturation(clear) < saturations[0] < saturations[1] < saturations[2]


def test_rotate_hue_turns_pure_green_into_pure_red_and_leaves_the_rest():
    rgb = np.array([[[0.0, 0.8, 0.0], [0.2, 0.4, 0.6]]], np.float32)
    mask = np.array([[True, False]])
    rotated = rotate_hue(rgb, mask, hue_shift=-1 / 3)  # 120 degrees back: green -> red
    np.testing.assert_allclose(rotated[0, 0], [0.8, 0.0, 0.0], atol=1e-5)
    np.testing.assert_array_equal(rotated[0, 1], rgb[0, 1])


# ---- low light -----------------------------------------------------------------------------------


def test_lowlight_darkens_more_with_severity():
    means = [example("lowlight", severity, index=0)[0].mean() for severity in (1, 2, 3)]
    assert example(index=0)[0].mean() > means[0] > means[1] > means[2]  # measured 69.4 > 37.2 > 27.1 > 19.1


def test_photon_noise_grows_with_the_signal():
    rng = np.random.default_rng(0)
    image = np.concatenate([np.full((200, 200, 3), 0.05, np.float32), np.full((200, 200, 3), 0.45, np.float32)])
    noisy = at_sensor(image, TargetShift("lowlight", 2), rng) - image  # variance 0.005 per unit intensity
    np.testing.assert_allclose(noisy[:200].std(), math.sqrt(0.005 * 0.05), rtol=0.02)  # 0.0158
    np.testing.assert_allclose(noisy[200:].std(), math.sqrt(0.005 * 0.45), rtol=0.02)  # 0.0474


def test_lamps_keep_shining_and_glare_in_the_dark():
    canvas = np.full((64, 64), BUILDING, np.uint8)  # no road: no oncoming headlights
    detail = np.full_like(canvas, DETAIL_NONE)
    detail[30:33, 30:33] = DETAIL_LAMP
    zeros = np.zeros_like(canvas)
    scene = Scene(canvas, zeros, detail, zeros, horizon_px=20.0, focal_px=70.0)
    grey = np.full((64, 64, 3), 0.5, np.float32)
    dark = dusk(grey, grey, scene, severity=2, rng=np.random.default_rng(0))
    assert dark[31, 31].min() >= 0.5  # the lamp: not darkened
    np.testing.assert_allclose(dark[0, 0], 0.5 * 0.3, atol=1e-4)  # far from it: exposure x0.3
    # the halo fades with distance from the lamp's edge (column 32): measured 0.58, 0.29, 0.18
    assert dark[31, 33, 0] > dark[31, 34, 0] > dark[31, 35, 0] > dark[0, 0, 0] + 0.02


# ---- scale and layout ----------------------------------------------------------------------------


def test_scale_moves_the_camera_up_and_widens_it():
    camera = draw_camera(np.random.default_rng(0), 128, 64, height_m=3.2, focal_factor=0.55)
    assert camera.focal_px == pytest.approx(1.1 * 128 * 0.55)
    # a ground point 10 m ahead sits height * focal / depth = 3.2 * 77.44 / 10 px below the horizon
    assert camera.project(0.0, 10.0)[1] - camera.horizon_px == pytest.approx(24.7808)
    assert TargetShift("scale", 3).camera() == (3.2, 0.55)
    assert TargetShift("fog", 3).camera() == (1.5, 1.0)


def test_layout_trades_cars_for_people():
    def share(shift, severity, train_id):
        return np.mean([(TRAIN_ID[example(shift, severity, index)[1]] == train_id).mean() for index in range(12)])

    person = 11
    assert share("layout", 3, person) > 3 * share("none", 1, person)
    assert share("layout", 3, CAR) < 0.5 * share("none", 1, CAR)


# ---- configuration and marker --------------------------------------------------------------------


def test_params_choose_the_shift_and_reject_unknown_values():
    params = config.load_params()
    params["prepare"].update(shift="season", shift_severity=3)
    synthetic = config.parse(params).synthetic_config()
    assert (synthetic.shift, synthetic.shift_severity) == ("season", 3)
    params["prepare"]["shift"] = "snow"
    with pytest.raises(UserError, match="'prepare.shift' is 'snow'; allowed values: none, fog"):
        config.parse(params)
    params["prepare"].update(shift="fog", shift_severity=4)
    with pytest.raises(UserError, match="'prepare.shift_severity' is 4; allowed values: 1, 2, 3"):
        config.parse(params)


def test_committed_default_is_the_unshifted_benchmark():
    assert config.load_validated_params().synthetic_config().shift == "none"


def test_the_marker_records_a_shift_and_omits_none(tmp_path):
    tiny = synthetic_config(seed=0, num_source=1, num_target_train=1, num_target_val=1,
                           source_size=(96, 53), target_size=(96, 48), shift="lowlight", shift_severity=2)
    generate_benchmark(tmp_path / "shifted", tiny)
    generate_benchmark(tmp_path / "plain", replace(tiny, shift="none"))
    shifted = json.loads((tmp_path / "shifted" / "synthetic_benchmark.json").read_text())["config"]
    plain = json.loads((tmp_path / "plain" / "synthetic_benchmark.json").read_text())["config"]
    assert (shifted["shift"], shifted["shift_severity"]) == ("lowlight", 2)
    assert "shift" not in plain and "shift_severity" not in plain
