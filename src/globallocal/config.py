"""params.yaml -> typed, validated configuration. The only place that knows the params layout.

Every value is checked once, here, with a message naming the key and the allowed values; the library
below trusts what it receives. A key that no getter reads is unknown: ``validate`` records the keys its
getters read and refuses any other key in params.yaml, naming the closest known one (a typo such as
``adapt.lamda_adv_local`` must not silently train with the default). Numbers must be finite.
"""

from __future__ import annotations

import difflib
import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from globallocal.alignment.discriminators import GLOBAL_MIN_INPUT
from globallocal.alignment.gan_losses import GAN_LOSSES
from globallocal.alignment.aligners import AlignmentConfig
from globallocal.alignment.global_alignment import GLOBAL_FAMILIES, family_representation
from globallocal.alignment.local import CONF_FILTERS, LocalAlignmentConfig
from globallocal.alignment.representations import REPRESENTATIONS
from globallocal.data.labels import CLASS_NAMES
from globallocal.data.synthetic import SOURCE_DIR as SYNTHETIC_SOURCE_DIR
from globallocal.data.synthetic import TARGET_DIR as SYNTHETIC_TARGET_DIR
from globallocal.data.synthetic import SyntheticConfig
from globallocal.distributed import LaunchConfig
from globallocal.errors import UserError
from globallocal.precision import PRECISIONS
from globallocal.snapshots import SnapshotConfig
from globallocal.train_state import OptimConfig, TrainConfig

SOURCE_DATASETS = ("gta5", "synthia")
MODEL_ARCHS = ("mobilenetv3_large", "mobilenetv3_small", "deeplabv2_resnet101")
OUTPUT_STRIDES = (8, 16)


def load_params(path: Path = Path("params.yaml")) -> dict:
    """Read params.yaml; a missing file or broken YAML is a UserError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found: run from the repository root, where params.yaml lives")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise UserError(f"{path} is not valid YAML ({where}{problem})") from error
    if not isinstance(params, dict):
        raise UserError(f"{path} must hold a mapping of sections (data, model, train, ...)")
    return params


# ---- typed getters: each names the full key in its error ----------------------------------------

#: While validate() runs: the keys its getters read (the known keys), else None.
_read_keys: set[str] | None = None
#: Keys read only in some settings (e.g. the benchmark's when prepare.generate is true): known always.
CONDITIONAL_KEYS = (
    "prepare.seed", "prepare.num_source", "prepare.num_target_train", "prepare.num_target_val",
    "prepare.source_size", "prepare.target_size",
)


@contextmanager
def _recording_reads():
    global _read_keys
    _read_keys = set(CONDITIONAL_KEYS)
    try:
        yield _read_keys
    finally:
        _read_keys = None


def _get(params: dict, key: str) -> Any:
    if _read_keys is not None:
        _read_keys.add(key)
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise UserError(f"params key '{key}' is missing from params.yaml; add it (see the README)")
        node = node[part]
    return node


def _choice(params: dict, key: str, allowed: tuple[str, ...]) -> str:
    value = _get(params, key)
    if value not in allowed:
        raise UserError(f"params key '{key}' is {value!r}; allowed values: {', '.join(allowed)}")
    return value


def _number(params: dict, key: str, minimum: float = 0.0, integer: bool = False, strict: bool = False):
    value = _get(params, key)
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        hint = ""
        if isinstance(value, str) and _parses_as_number(value):
            hint = " (YAML reads it as text: write it with a dot, e.g. 1.0e-3, and without quotes)"
        raise UserError(f"params key '{key}' is {value!r}; expected {'an integer' if integer else 'a number'}{hint}")
    if not math.isfinite(value):
        raise UserError(f"params key '{key}' is {value!r}; expected a finite number")
    if value < minimum or (strict and value == minimum):
        bound = f"> {minimum}" if strict else f">= {minimum}"
        raise UserError(f"params key '{key}' is {value!r}; it must be {bound}")
    return value


def _parses_as_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _fraction(params: dict, key: str) -> float:
    value = _number(params, key)
    if value > 1:
        raise UserError(f"params key '{key}' is {value!r}; it must lie in [0, 1]")
    return float(value)


def _bool(params: dict, key: str) -> bool:
    value = _get(params, key)
    if not isinstance(value, bool):
        raise UserError(f"params key '{key}' is {value!r}; expected true or false")
    return value


def _size(params: dict, key: str) -> tuple[int, int]:
    value = _get(params, key)
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise UserError(f"params key '{key}' is {value!r}; expected [width, height], two positive integers")
    return int(value[0]), int(value[1])


def _path(params: dict, key: str, optional: bool = False) -> Path | None:
    value = _get(params, key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise UserError(f"params key '{key}' is {value!r}; expected a path")
    return Path(value)


# ---- sections ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DataConfig:
    source: str
    source_root: Path
    target_root: Path
    lists_dir: Path
    source_size: tuple[int, int]
    target_size: tuple[int, int]


@dataclass(frozen=True)
class ModelConfig:
    arch: str
    backbone_weights: Path | None
    freeze_bn: bool
    output_stride: int
    #: Running-statistics momentum of learned BatchNorm; None = the architecture's own.
    bn_momentum: float | None = None

    def spec(self, num_classes: int) -> dict:
        """Keyword arguments of ``build_model`` (stored in checkpoints, so plain types only)."""
        return {
            "arch": self.arch,
            "num_classes": num_classes,
            "backbone_weights": str(self.backbone_weights) if self.backbone_weights else None,
            "freeze_bn": self.freeze_bn,
            "output_stride": self.output_stride,
            "bn_momentum": self.bn_momentum,
        }


def data_config(params: dict) -> DataConfig:
    return DataConfig(
        source=_choice(params, "data.source", SOURCE_DATASETS),
        source_root=_path(params, "data.source_root"),
        target_root=_path(params, "data.target_root"),
        lists_dir=_path(params, "data.lists_dir"),
        source_size=_size(params, "data.source_size"),
        target_size=_size(params, "data.target_size"),
    )


def model_config(params: dict) -> ModelConfig:
    stride = _number(params, "model.output_stride", integer=True)
    if stride not in OUTPUT_STRIDES:
        raise UserError(f"params key 'model.output_stride' is {stride!r}; allowed values: 8, 16")
    return ModelConfig(
        arch=_choice(params, "model.arch", MODEL_ARCHS),
        backbone_weights=_path(params, "model.backbone_weights", optional=True),
        freeze_bn=_bool(params, "model.freeze_bn"),
        output_stride=stride,
        bn_momentum=_bn_momentum(params),
    )


def _bn_momentum(params: dict) -> float | None:
    """``model.bn_momentum``: null (the architecture's own) or a number in (0, 1]."""
    if _get(params, "model.bn_momentum") is None:
        return None
    value = _fraction(params, "model.bn_momentum")
    if value == 0:
        raise UserError("params key 'model.bn_momentum' is 0; it must lie in (0, 1], or be null")
    return value


def device_name(params: dict) -> str:
    value = _get(params, "device")
    if not isinstance(value, str) or not (value in ("auto", "cpu", "cuda") or value.startswith("cuda:")):
        raise UserError(f"params key 'device' is {value!r}; allowed values: auto, cpu, cuda, cuda:N")
    return value


def seed(params: dict) -> int:
    return _number(params, "seed", integer=True)


def num_workers(params: dict) -> int | str:
    """A count, or ``auto`` (resolved by ``data.loading.resolve_num_workers`` where the CPUs are known)."""
    if _get(params, "num_workers") == "auto":
        return "auto"
    return _number(params, "num_workers", integer=True)


def batch_size(params: dict) -> int:
    return _number(params, "train.batch_size", minimum=1, integer=True)


def launch_config(params: dict) -> LaunchConfig:
    """How many processes train (torchrun); the global batch must split evenly over them."""
    launch = LaunchConfig(
        nproc_per_node=_number(params, "train.nproc_per_node", minimum=1, integer=True),
        nnodes=_number(params, "train.nnodes", minimum=1, integer=True),
        rdzv_endpoint=_get(params, "train.rdzv_endpoint"),
    )
    host, _, port = str(launch.rdzv_endpoint).rpartition(":")
    if not (isinstance(launch.rdzv_endpoint, str) and host and port.isdigit()):
        raise UserError(f"params key 'train.rdzv_endpoint' is {launch.rdzv_endpoint!r}; expected 'host:port'")
    batch = batch_size(params)
    if batch % launch.world_size:
        raise UserError(
            f"params key 'train.batch_size' is {batch}; it must be a multiple of the {launch.world_size} "
            "processes (train.nproc_per_node x train.nnodes) that share each batch"
        )
    return launch


def optim_config(params: dict, stage: str) -> OptimConfig:
    """The optimisation schedule of a training stage (pretrain, adapt or oracle)."""
    iterations = _number(params, f"{stage}.iterations", minimum=1, integer=True)
    max_iters = _number(params, f"{stage}.max_iters", minimum=1, integer=True)
    if max_iters < iterations:
        raise UserError(
            f"params key '{stage}.max_iters' is {max_iters}; the poly horizon must be >= "
            f"'{stage}.iterations' ({iterations})"
        )
    betas = _get(params, "train.betas_d")
    if not (isinstance(betas, list) and len(betas) == 2
            and all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)):
        raise UserError(f"params key 'train.betas_d' is {betas!r}; expected two numbers in [0, 1)")
    return OptimConfig(
        iterations=iterations,
        max_iters=max_iters,
        lr=float(_number(params, f"{stage}.lr", strict=True)),
        momentum=_fraction(params, "train.momentum"),
        weight_decay=float(_number(params, "train.weight_decay")),
        power=float(_number(params, "train.power")),
        lr_d=float(_number(params, "train.lr_d", strict=True)),
        betas_d=(float(betas[0]), float(betas[1])),
    )


def _class_ids(params: dict, key: str) -> tuple[int, ...]:
    names = _get(params, key)
    if not isinstance(names, list):
        raise UserError(f"params key '{key}' is {names!r}; expected a list of class names")
    unknown = [name for name in names if name not in CLASS_NAMES]
    if unknown:
        raise UserError(f"params key '{key}' names unknown classes {unknown}; allowed: {', '.join(CLASS_NAMES)}")
    return tuple(CLASS_NAMES.index(name) for name in names)


def alignment_config(params: dict) -> AlignmentConfig:
    """The adapt stage's alignment terms."""
    family = _choice(params, "adapt.global_family", GLOBAL_FAMILIES)
    gan = _choice(params, "adapt.gan_loss", GAN_LOSSES)
    representation = _choice(params, "adapt.local_representation", ("auto",) + REPRESENTATIONS)
    if representation == "auto":
        representation = family_representation(family)
    context = _number(params, "adapt.local_context", minimum=1, integer=True)
    if context % 2 == 0:
        raise UserError(f"params key 'adapt.local_context' is {context}; it must be odd (1, 3, 5, ...)")
    lr_d_local = _get(params, "adapt.lr_d_local")
    local = LocalAlignmentConfig(
        representation=representation,
        window=_number(params, "adapt.local_window", minimum=1, integer=True),
        min_purity=_fraction(params, "adapt.local_min_purity"),
        conf_threshold=_fraction(params, "adapt.local_conf_threshold"),
        background_classes=_class_ids(params, "adapt.local_background_classes"),
        gan_loss=gan,
        conf_filter=_choice(params, "adapt.local_conf_filter", CONF_FILTERS),
        context=context,
    )
    lambdas = {
        name: float(_number(params, f"adapt.{name}"))
        for name in (
            "lambda_adv_main", "lambda_adv_aux", "lambda_ent_main", "lambda_ent_aux",
            "lambda_adv_local", "lambda_adv_local_aux",
        )
    }
    return AlignmentConfig(
        global_family=family,
        gan_loss=gan,
        global_d_width=_number(params, "adapt.global_d_width", minimum=1, integer=True),
        global_d_pool=_number(params, "adapt.global_d_pool", minimum=1, integer=True),
        local_start_iter=_number(params, "adapt.local_start_iter", integer=True),
        local_warmup_iters=_number(params, "adapt.local_warmup_iters", integer=True),
        lr_d_local=None if lr_d_local is None else float(_number(params, "adapt.lr_d_local", strict=True)),
        local=local,
        **lambdas,
    )


def check_global_discriminator_fits(params: dict) -> None:
    """D_g must see a map of at least GLOBAL_MIN_INPUT x GLOBAL_MIN_INPUT positions in both domains."""
    alignment = alignment_config(params)
    if alignment.global_family not in ("advent", "adaptsegnet"):
        return
    data, pool = data_config(params), alignment.global_d_pool
    for key, (width, height) in (("data.source_size", data.source_size), ("data.target_size", data.target_size)):
        seen = (math.ceil(width / pool), math.ceil(height / pool))
        if min(seen) < GLOBAL_MIN_INPUT:
            raise UserError(
                f"params keys '{key}' ({width}x{height}) and 'adapt.global_d_pool' ({pool}): D_g would see "
                f"a {seen[0]}x{seen[1]} map, but its five stride-2 convolutions need at least "
                f"{GLOBAL_MIN_INPUT}x{GLOBAL_MIN_INPUT}; lower adapt.global_d_pool or raise {key}"
            )


def train_config(params: dict, stage: str, aligned: bool) -> TrainConfig:
    """The full configuration of a training stage; ``aligned`` switches the adapt terms on."""
    return TrainConfig(
        optim=optim_config(params, stage),
        lambda_seg_aux=float(_number(params, "train.lambda_seg_aux")),
        multi_level=_bool(params, "train.multi_level"),
        alignment=alignment_config(params) if aligned else None,
        log_every=_number(params, "train.log_every", minimum=1, integer=True),
        precision=_choice(params, "train.precision", PRECISIONS),
        channels_last=_bool(params, "train.channels_last"),
        log_grad_norms=_bool(params, "train.log_grad_norms"),
    )


def prepare_out_dir(params: dict) -> Path:
    return _path(params, "prepare.out_dir")


def synthetic_config(params: dict) -> SyntheticConfig | None:
    """The embedded benchmark to generate, or None when ``prepare.generate`` is false (real datasets).

    Generating requires the data roots to be the benchmark's own folders, so that nothing the user
    pointed at (a real dataset) is ever overwritten.
    """
    if not _bool(params, "prepare.generate"):
        return None
    out_dir = prepare_out_dir(params)
    data = data_config(params)
    for key, root, expected in (
        ("data.source_root", data.source_root, out_dir / SYNTHETIC_SOURCE_DIR),
        ("data.target_root", data.target_root, out_dir / SYNTHETIC_TARGET_DIR),
    ):
        if root != expected:
            raise UserError(
                f"params key '{key}' is '{root}' but prepare.generate is true and writes the benchmark to "
                f"'{expected}': point {key} there, or set prepare.generate to false to use a real dataset"
            )
    if data.source != "gta5":
        raise UserError("params key 'data.source' must be 'gta5' when prepare.generate is true "
                        "(the embedded benchmark is written in the GTA5 layout)")
    return SyntheticConfig(
        seed=_number(params, "prepare.seed", integer=True),
        num_source=_number(params, "prepare.num_source", minimum=1, integer=True),
        num_target_train=_number(params, "prepare.num_target_train", minimum=1, integer=True),
        num_target_val=_number(params, "prepare.num_target_val", minimum=1, integer=True),
        source_size=_size(params, "prepare.source_size"),
        target_size=_size(params, "prepare.target_size"),
    )


def dev_split(params: dict) -> tuple[int, int]:
    """(size, seed) of the held-out labelled target dev split carved out of target train."""
    return (
        _number(params, "prepare.dev_size", minimum=1, integer=True),
        _number(params, "prepare.dev_seed", integer=True),
    )


def num_qualitative(params: dict) -> int:
    return _number(params, "evaluate.num_qualitative", integer=True)


def snapshot_config(params: dict) -> SnapshotConfig:
    """How often training stages snapshot (``train.snapshot_every``, 0 = never) and how many they keep."""
    return SnapshotConfig(
        every=_number(params, "train.snapshot_every", integer=True),
        keep=_number(params, "train.keep_snapshots", minimum=1, integer=True),
    )


def _leaf_keys(node: dict, prefix: str = "") -> list[str]:
    """Every key path of a nested mapping: sections and the keys inside them (``adapt``, ``adapt.lr``)."""
    keys = []
    for name, value in node.items():
        key = f"{prefix}{name}"
        keys.append(key)
        if isinstance(value, dict):
            keys += _leaf_keys(value, f"{key}.")
    return keys


def check_known_keys(params: dict, known: set[str]) -> None:
    """Refuse any key path not in ``known`` (or a section holding known keys), naming the closest known key."""
    parts = [key.split(".") for key in known]
    sections = {".".join(part[:depth]) for part in parts for depth in range(1, len(part))}
    allowed = known | sections
    for key in _leaf_keys(params):
        if key in allowed or any(key.startswith(f"{k}.") for k in known):
            continue
        close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.0)
        suggestion = f"; did you mean '{close[0]}'?" if close else ""
        raise UserError(f"params key '{key}' is not a known key{suggestion}")


def load_validated_params(path: Path = Path("params.yaml")) -> dict:
    """params.yaml, every section checked, so a bad value stops a stage before any work."""
    params = load_params(path)
    validate(params)
    return params


def validate(params: dict) -> None:
    """Check every section at once, so that a bad value fails before any stage trains.

    Also refuses keys that no stage reads (typos), naming the closest known key.
    """
    with _recording_reads() as known:
        _validate_values(params)
    check_known_keys(params, known)


def _validate_values(params: dict) -> None:
    data_config(params)
    model_config(params)
    device_name(params)
    seed(params)
    num_workers(params)
    batch_size(params)
    launch_config(params)
    for stage in ("pretrain", "adapt", "oracle"):
        train_config(params, stage, aligned=stage == "adapt")
    check_global_discriminator_fits(params)
    prepare_out_dir(params)
    synthetic_config(params)
    dev_split(params)
    num_qualitative(params)
    snapshot_config(params)
