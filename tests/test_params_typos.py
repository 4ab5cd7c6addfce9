"""params.yaml mistakes named as the user wrote them: a misspelled key (not the key it hides) with the
closest known key, and a quoted number with the hint that fits it."""

import copy
from pathlib import Path

import pytest

from globallocal import config
from globallocal.errors import UserError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def params():
    return config.load_params(REPO / "params.yaml")


def renamed(params, section, old, new):
    changed = copy.deepcopy(params)
    node = changed if section is None else changed[section]
    node[new] = node.pop(old)
    return changed


def error_of(params) -> str:
    with pytest.raises(UserError) as error:
        config.validate(params)
    return str(error.value)


def test_a_misspelled_key_is_named_as_written_with_the_key_it_misspells(params):
    assert error_of(renamed(params, "train", "batch_size", "batchsize")) == (
        "params key 'train.batchsize' is not a known key; did you mean 'train.batch_size'?")


def test_a_misspelled_section_is_named_as_written(params):
    assert error_of(renamed(params, None, "train", "trian")) == (
        "params key 'trian' is not a known key; did you mean 'train'?")


def test_a_deleted_key_beside_a_similar_real_key_is_still_reported_missing(params):
    """adapt.lambda_adv_aux looks like adapt.lambda_adv_main but is a key of its own, not a misspelling."""
    broken = copy.deepcopy(params)
    del broken["adapt"]["lambda_adv_main"]
    assert error_of(broken) == (
        "params key 'adapt.lambda_adv_main' is missing from params.yaml; add it (see the README)")


def test_a_misspelling_is_found_even_with_another_mistake_further_on(params):
    broken = renamed(params, "train", "momentum", "momentun")
    broken["oracle"]["lr"] = -1
    assert error_of(broken) == "params key 'train.momentun' is not a known key; did you mean 'train.momentum'?"


@pytest.mark.parametrize("key, text, expected", [
    ("pretrain.iterations", "300", "an integer"),
    ("pretrain.lr", "0.01", "a number"),
])
def test_a_quoted_number_gets_the_hint_to_remove_the_quotes(params, key, text, expected):
    section, name = key.split(".")
    changed = copy.deepcopy(params)
    changed[section][name] = text
    assert error_of(changed) == (f"params key '{key}' is '{text}'; expected {expected} "
                                 "(it is quoted, so YAML reads it as text: remove the quotes)")


def test_an_exponent_without_a_dot_keeps_the_hint_to_write_a_dot(params):
    changed = copy.deepcopy(params)
    changed["pretrain"]["lr"] = "1e-2"  # how YAML 1.1 reads 1e-2 written without quotes
    assert error_of(changed) == ("params key 'pretrain.lr' is '1e-2'; expected a number (YAML reads it as text: "
                                 "write it with a dot, e.g. 1.0e-3, and without quotes)")
