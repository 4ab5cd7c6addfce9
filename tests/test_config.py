"""params.yaml validation: the committed default passes; each bad value names its key."""

import copy
import dataclasses
from pathlib import Path

import pytest

from globallocal import config
from globallocal.alignment.aligners import AlignmentConfig
from globallocal.alignment.local import LocalAlignmentConfig
from globallocal.config import sections
from globallocal.errors import UserError
from globallocal.training.state import OptimConfig, TrainConfig
from support.tiny_project import REPO


@pytest.fixture
def params():
    return config.load_params(REPO / "params.yaml")


def with_value(params, key, value):
    changed = copy.deepcopy(params)
    node = changed
    *parents, last = key.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    return changed


def test_committed_params_are_valid(params):
    config.validate(params)


def test_default_adapt_is_advent_plus_local_on_the_main_head(params):
    alignment = config.parse(params).alignment_config()
    assert alignment.global_family == "advent"
    assert alignment.local.representation == "self_information"  # 'auto' follows the global family
    assert alignment.lambda_adv_local > 0 and alignment.global_weight("main") > 0


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("adapt.global_family", "cycada", "adapt.global_family"),
        ("adapt.lambda_adv_local", -0.1, "adapt.lambda_adv_local"),
        ("data.source_size", [256], "data.source_size"),
        ("data.target_size", [256, 0], "data.target_size"),
        ("data.target_size", "256x128", "data.target_size"),
        ("model.arch", "resnet50", "model.arch"),
        ("model.output_stride", 32, "model.output_stride"),
        ("model.bn_momentum", 0, "model.bn_momentum"),
        ("model.bn_momentum", 1.5, "model.bn_momentum"),
        ("pretrain.lr", 0, "pretrain.lr"),
        ("pretrain.iterations", 2.5, "pretrain.iterations"),
        ("adapt.max_iters", 10, "adapt.max_iters"),
        ("adapt.local_conf_threshold", 1.5, "adapt.local_conf_threshold"),
        ("adapt.local_background_classes", ["sky", "skyscraper"], "skyscraper"),
        ("device", "tpu", "device"),
        ("train.multi_level", "yes", "train.multi_level"),
        ("data.source_root", "elsewhere/gta5", "data.source_root"),
        ("prepare.shift", "snow", "prepare.shift"),
        ("prepare.shift_severity", 0, "prepare.shift_severity"),
        ("train.cpu_threads", 0, "train.cpu_threads"),
        ("train.cpu_threads", "all", "train.cpu_threads"),
    ],
)
def test_bad_value_fails_naming_the_key(params, key, value, message):
    with pytest.raises(UserError, match=message.replace(".", r"\.")):
        config.validate(with_value(params, key, value))


def test_bn_momentum_reaches_the_model_spec_and_null_means_the_architectures_own(params):
    assert config.parse(params).model.spec(19)["bn_momentum"] == 0.1
    assert config.parse(with_value(params, "model.bn_momentum", None)).model.spec(19)["bn_momentum"] is None


def test_missing_key_is_named(params):
    broken = copy.deepcopy(params)
    del broken["adapt"]["lambda_adv_local"]
    with pytest.raises(UserError, match=r"'adapt\.lambda_adv_local' is missing"):
        config.validate(broken)


def test_background_classes_become_train_ids(params):
    changed = with_value(params, "adapt.local_background_classes", ["road", "sky"])
    assert config.parse(changed).alignment_config().local.background_classes == (0, 10)


def test_minent_uses_the_entropy_weights(params):
    changed = with_value(params, "adapt.global_family", "minent")
    alignment = config.parse(changed).alignment_config()
    assert alignment.global_weight("main") == params["adapt"]["lambda_ent_main"]


def test_real_data_needs_no_generation(params):
    changed = with_value(params, "prepare.generate", False)
    changed = with_value(changed, "data.source_root", "/datasets/GTA5")
    assert config.parse(changed).synthetic_config() is None
    config.validate(changed)


def test_missing_params_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="params.yaml"):
        config.load_params(tmp_path / "params.yaml")


# ---- the typed tree ---------------------------------------------------------------------------------

def test_a_misspelt_key_is_refused_with_the_closest_known_key_even_when_it_replaces_the_right_one(params):
    broken = copy.deepcopy(params)
    broken["train"]["batchsize"] = broken["train"].pop("batch_size")
    with pytest.raises(UserError) as error:
        config.parse(broken)
    assert str(error.value) == "params key 'train.batchsize' is not a known key; did you mean 'train.batch_size'?"


def test_an_unknown_section_is_refused(params):
    with pytest.raises(UserError, match=r"params key 'trian' is not a known key; did you mean 'train'\?"):
        config.parse({**params, "trian": {}})


def test_the_tree_declares_exactly_the_keys_of_the_committed_params_yaml(params):
    def keys(node, prefix=""):
        out = []
        for name, value in node.items():
            out.append(f"{prefix}{name}")
            if isinstance(value, dict):
                out += keys(value, f"{prefix}{name}.")
        return out

    assert sorted(config.known_keys()) == sorted(keys(params))


def test_the_tree_is_typed_and_frozen(params):
    tree = config.parse(params)
    assert tree.train.batch_size == 2 and tree.adapt.lr == 0.0025 and tree.data.source_size == (192, 108)
    assert tree.model.bn_momentum == 0.1 and tree.prepare.out_dir == Path("data/synthetic")
    with pytest.raises(dataclasses.FrozenInstanceError):
        tree.train.batch_size = 4


@pytest.mark.parametrize("cls", [AlignmentConfig, LocalAlignmentConfig, OptimConfig, TrainConfig,
                                 sections.ModelSection, sections.DataSection, sections.AdaptSection])
def test_config_types_hold_no_defaults_params_yaml_is_the_one_source(cls):
    with_defaults = [f.name for f in dataclasses.fields(cls)
                     if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING]
    assert with_defaults == []
