"""Interval means accumulated on the device: the same numbers, in the same order, as reading every value."""

import math
import random

import pytest
import torch

from globallocal.training.running_means import NonFiniteLoss, RunningMeans

NAN = float("nan")


def t(value):
    return torch.tensor(value, dtype=torch.float32)


def add_all(running, steps):
    for iteration, stats in enumerate(steps, start=1):
        running.add(stats, iteration)


def read_every_value(steps):
    """The loop as it was: every value read as a Python float, NaN skipped, keys in first-defined order."""
    sums, counts = {}, {}
    for stats in steps:
        for key, value in stats.items():
            value = float(value)
            if not math.isnan(value):
                sums[key] = sums.get(key, 0.0) + value
                counts[key] = counts.get(key, 0) + 1
    return {key: sums[key] / counts[key] for key in sums}


def test_means_are_over_the_iterations_where_a_statistic_was_defined():
    steps = [
        {"lr/generator": 0.5, "loss_seg/main": t(1.0), "d_acc/local_main_source": t(NAN), "d_out/x": t(NAN)},
        {"lr/generator": 0.25, "loss_seg/main": t(2.0), "d_acc/local_main_source": t(0.5), "d_out/x": t(NAN)},
        {"lr/generator": 0.125, "loss_seg/main": t(4.5), "d_acc/local_main_source": t(NAN), "d_out/x": t(NAN)},
    ]
    running = RunningMeans()
    add_all(running, steps)
    means = running.means()
    # lr: (0.5 + 0.25 + 0.125) / 3; loss: (1 + 2 + 4.5) / 3; accuracy: defined once (0.5); d_out never: absent
    assert means == {"lr/generator": 0.875 / 3, "loss_seg/main": 2.5, "d_acc/local_main_source": 0.5}
    assert list(means) == ["lr/generator", "loss_seg/main", "d_acc/local_main_source"]


def test_a_key_comes_out_where_it_was_first_defined_not_where_it_was_first_nan():
    steps = [{"d_acc/a": t(NAN), "loss_seg/main": t(1.0)}, {"d_acc/a": t(0.25), "loss_seg/main": t(3.0)}]
    running = RunningMeans()
    add_all(running, steps)
    assert list(running.means().items()) == [("loss_seg/main", 2.0), ("d_acc/a", 0.25)]


def test_random_values_give_bit_identical_means_in_the_same_order_as_reading_every_value():
    rng = random.Random(0)
    keys = ["lr/generator", "loss_seg/main", "loss_adv/local_main", "d_out/local_main_source", "grad_norm/seg_main"]
    steps = []
    for iteration in range(40):
        stats = {}
        for key in keys:
            if key == "grad_norm/seg_main" and iteration % 4:
                continue  # measured at some steps only: another set of keys
            if key == "lr/generator":
                stats[key] = rng.random() * 1e-2
            else:
                value = rng.choice([NAN, rng.gauss(0, 1) * 10 ** rng.randint(-6, 6)]) if key.startswith("d_out") \
                    else rng.gauss(0, 1) * 10 ** rng.randint(-6, 6)
                stats[key] = torch.tensor(value, dtype=torch.float32)
        steps.append(stats)
    running = RunningMeans()
    add_all(running, steps)
    expected = read_every_value(steps)
    assert list(running.means().items()) == list(expected.items())  # == on floats: bit for bit


def test_clear_starts_a_new_interval():
    running = RunningMeans()
    add_all(running, [{"loss_seg/main": t(1.0), "lr/generator": 1.0}])
    running.clear()
    add_all(running, [{"loss_seg/main": t(3.0), "lr/generator": 0.5}, {"loss_seg/main": t(4.0), "lr/generator": 0.5}])
    assert running.means() == {"loss_seg/main": 3.5, "lr/generator": 0.5}


def test_a_restored_interval_continues_its_sums_in_order():
    steps = [{"lr/generator": 0.1 * i, "loss_seg/main": t(1.0 / (i + 3)), "d_out/a": t(NAN if i < 2 else 0.3 * i)}
             for i in range(6)]
    first = RunningMeans()
    add_all(first, steps[:3])
    sums, counts, _ = first.read()
    assert counts == {"lr/generator": 3, "loss_seg/main": 3, "d_out/a": 1}
    resumed = RunningMeans()
    resumed.load(sums, counts)
    add_all(resumed, steps[3:])
    assert list(resumed.means().items()) == list(read_every_value(steps).items())


def test_the_first_non_finite_loss_is_named_with_its_iteration_and_statistics_are_not_checked():
    steps = [
        {"loss_seg/main": t(1.0), "d_out/a": t(NAN), "loss_d/global_main": t(0.5)},
        {"loss_seg/main": t(2.0), "d_out/a": t(math.inf), "loss_d/global_main": t(math.inf)},
        {"loss_seg/main": t(NAN), "d_out/a": t(0.5), "loss_d/global_main": t(NAN)},
    ]
    running = RunningMeans()
    add_all(running, steps)
    sums, counts, bad = running.read()
    assert bad == NonFiniteLoss("loss_d/global_main", math.inf, 2)
    assert running.read()[2] is None  # reported once
    assert sums["loss_seg/main"] == 3.0 and counts["loss_seg/main"] == 2  # a NaN loss is not averaged in


def test_load_after_adding_is_refused():
    running = RunningMeans()
    add_all(running, [{"loss_seg/main": t(1.0)}])
    with pytest.raises(RuntimeError, match="load after values were added"):
        running.load({}, {})
