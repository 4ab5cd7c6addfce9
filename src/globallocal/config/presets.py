"""Presets: named sets of params values (``presets/<name>.yaml``) written into params.yaml in one step.

A preset is a partial params.yaml: every key it lists must already exist in params.yaml, and only those
keys change. Applying it rewrites params.yaml in place (comments and key order kept), so params.yaml,
``dvc params diff`` and ``dvc exp show`` always hold the effective values, never a preset name. The same
values can instead start an experiment as ``dvc exp run -S key=value ...`` without touching the
committed params.yaml. A preset file's first line is a comment that ``preset list`` shows as its
description.
"""

from __future__ import annotations

import difflib
import json
import shlex
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from globallocal import config
from globallocal.errors import UserError

PRESETS_DIR = Path("presets")
PRESET_SUFFIX = ".yaml"


def available_presets(presets_dir: Path = PRESETS_DIR) -> list[str]:
    """Names of the preset files in ``presets_dir`` (without the .yaml suffix), sorted."""
    return sorted(path.stem for path in Path(presets_dir).glob(f"*{PRESET_SUFFIX}"))


def preset_description(name: str, presets_dir: Path = PRESETS_DIR) -> str:
    """A preset file's one-line description: its first line, a comment (empty if it has none)."""
    first = _preset_path(name, presets_dir).read_text().split("\n", 1)[0].strip()
    return first.lstrip("#").strip() if first.startswith("#") else ""


def _preset_path(name: str, presets_dir: Path) -> Path:
    path = Path(name)
    if not path.suffix:
        path = Path(presets_dir) / f"{name}{PRESET_SUFFIX}"
    if not path.is_file():
        names = ", ".join(available_presets(presets_dir)) or "(none found)"
        raise UserError(f"preset '{name}' not found at {path}; available presets: {names}")
    return path


def load_preset(name: str, presets_dir: Path = PRESETS_DIR) -> dict:
    """The nested mapping of a preset, by name (``paper_gta5``) or by path to a YAML file."""
    path = _preset_path(name, presets_dir)
    try:
        preset = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise UserError(f"preset {path} is not valid YAML: {error}") from error
    if not isinstance(preset, dict):
        raise UserError(f"preset {path} must hold a mapping of params sections, like params.yaml")
    return preset


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{"data": {"source": "gta5"}} -> {"data.source": "gta5"}; lists and scalars are leaves."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def parse_overrides(assignments: list[str]) -> dict[str, Any]:
    """``["data.source_size=[64, 32]", "seed=1"]`` -> {"data.source_size": [64, 32], "seed": 1} (YAML values)."""
    overrides: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep or not key:
            raise UserError(f"override '{assignment}' must read key=value, e.g. data.source_root=/datasets/GTA5")
        try:
            overrides[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise UserError(f"override '{assignment}': the value is not valid YAML ({error})") from error
    return overrides


def preset_settings(name: str, overrides: list[str] = (), presets_dir: Path = PRESETS_DIR) -> dict[str, Any]:
    """The dotted key -> value settings of a preset, then ``overrides`` (key=value strings) on top."""
    settings = flatten(load_preset(name, presets_dir))
    settings.update(parse_overrides(list(overrides)))
    return settings


def _round_trip() -> YAML:
    document = YAML()  # round-trip: comments, key order and quoting survive
    document.preserve_quotes = True
    document.width = 4096  # never re-wrap a long line
    document.indent(mapping=2, sequence=4, offset=2)
    # ruamel writes None as an empty value; params.yaml spells it null.
    document.representer.add_representer(
        type(None), lambda representer, _: representer.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return document


def _as_yaml_node(value: Any) -> Any:
    """Lists become flow-style sequences ([1280, 720]), as params.yaml writes them."""
    if isinstance(value, list):
        sequence = CommentedSeq(value)
        sequence.fa.set_flow_style()
        return sequence
    return value


def _set(document: CommentedMap, key: str, value: Any, origin: str) -> bool:
    """Set dotted ``key`` in the document; returns whether the value changed."""
    node: Any = document
    *parents, last = key.split(".")
    for depth, part in enumerate(parents):
        if not isinstance(node, dict) or part not in node:
            raise UserError(f"{origin} sets '{key}', but params.yaml has no section "
                            f"'{'.'.join(parents[:depth + 1])}'{did_you_mean(key, document)}")
        node = node[part]
    if not isinstance(node, dict) or last not in node:
        raise UserError(f"{origin} sets '{key}', which params.yaml does not have{did_you_mean(key, document)}; "
                        "only keys params.yaml has can be set (check the spelling against params.yaml)")
    if isinstance(node[last], dict):
        raise UserError(f"{origin} sets '{key}', which is a whole section in params.yaml; set its keys")
    changed = _plain(node[last]) != value
    if changed:
        node[last] = _as_yaml_node(value)
        _realign_comment(node, last, indent=2 * len(parents), value=value)
    return changed


def did_you_mean(key: str, document: dict) -> str:
    """", did you mean 'data.source_size'?" for the closest key params.yaml has ("" when none is close)."""
    close = difflib.get_close_matches(key, list(flatten(json.loads(json.dumps(document)))), n=1, cutoff=0.8)
    return f", did you mean '{close[0]}'?" if close else ""


def _realign_comment(node: CommentedMap, key: str, indent: int, value: Any) -> None:
    """Keep ``key``'s end-of-line comment in its section's comment column, or just after a long value.

    ruamel keeps a comment's old column, so a long value written once would leave it far to the right.
    """
    def comment_of(name: str):
        items = node.ca.items.get(name)
        token = items[2] if items and len(items) > 2 else None
        # Blank lines after a key are stored as comment tokens too; only real "# ..." comments count.
        if token is None or token.start_mark is None or not token.value.lstrip().startswith("#"):
            return None
        return token

    comment = comment_of(key)
    others = sorted(token.start_mark.column for name in node if name != key and (token := comment_of(name)))
    if comment is None or not others:
        return
    text = "null" if value is None else value if isinstance(value, str) else yaml.safe_dump(
        value, default_flow_style=True, width=4096).strip().removesuffix("...").strip()
    needed = indent + len(key) + len(": ") + len(text) + 1
    column = comment.start_mark.column
    if column < needed or column > others[-1]:
        comment.start_mark.column = max(others[len(others) // 2], needed)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class Change:
    """One key ``apply_settings`` changed: its value before and after, and whether a --set asked for it."""

    key: str
    old: Any
    new: Any
    from_override: bool

    def __str__(self) -> str:
        return f"{self.key}: {_shown(self.old)} -> {_shown(self.new)}"


def apply_settings(params_path: Path, settings: dict[str, Any], origin: str,
                   override_keys: Collection[str] = ()) -> list[Change]:
    """Write ``settings`` into params.yaml in place, keeping its comments; returns the changes, in order.

    ``override_keys``: the keys a --set gave (a misspelt one is blamed on --set, not on ``origin``).
    The result is validated (config.validate) before anything is written, so a preset or override
    that makes params.yaml invalid leaves it untouched.
    """
    params_path = Path(params_path)
    if not params_path.is_file():
        raise UserError(f"{params_path} not found: run from the repository root, where params.yaml lives")
    yaml_rt = _round_trip()
    document = yaml_rt.load(params_path.read_text())
    before = flatten(json.loads(json.dumps(document)))
    changes = []
    for key, value in settings.items():
        from_override = key in override_keys
        if _set(document, key, value, f"--set {key}=..." if from_override else origin):
            changes.append(Change(key, before[key], value, from_override))
    config.validate(json.loads(json.dumps(document)))  # plain dicts, as the stages will read them
    with params_path.open("w") as stream:
        yaml_rt.dump(document, stream)
    return changes


def preset_values(presets_dir: Path = PRESETS_DIR) -> dict[str, list[Any]]:
    """Every value any preset file gives each key: what a preset, not a user, may have written there."""
    values: dict[str, list[Any]] = {}
    for name in available_presets(presets_dir):
        for key, value in flatten(load_preset(name, presets_dir)).items():
            values.setdefault(key, []).append(value)
    return values


def reverted(changes: list[Change], presets_dir: Path = PRESETS_DIR) -> list[Change]:
    """The changes a preset (not a --set) made to a value no preset sets: an earlier --set or edit, undone."""
    known = preset_values(presets_dir)
    return [change for change in changes
            if not change.from_override and _plain(change.old) not in known.get(change.key, [])]


def revert_warnings(changes: list[Change], name: str, overrides: list[str], presets_dir: Path = PRESETS_DIR,
                    ) -> list[str]:
    """A warning per reverted value, and the command that applies the preset and keeps them all."""
    undone = reverted(changes, presets_dir)
    if not undone:
        return []
    lines = [f"warning: {change} reverts a value no preset sets (an earlier --set or edit)" for change in undone]
    keep = [*overrides, *(f"{change.key}={_format_value(change.old)}" for change in undone)]
    command = ["python", "-m", "globallocal", "preset", "apply", name]
    for assignment in keep:
        command += ["--set", assignment]
    lines.append(f"warning: to keep them: {shell_line(command)}")
    return lines


def _format_value(value: Any) -> str:
    """A value as ``dvc exp run -S`` parses it (YAML): strings bare, the rest as JSON (a YAML subset)."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def changed_settings(params: dict, settings: dict[str, Any]) -> dict[str, Any]:
    """The settings whose value differs from ``params`` (a loaded params.yaml); unknown keys are kept."""
    current = flatten(params)
    return {key: value for key, value in settings.items() if key not in current or current[key] != value}


def describe_changes(params: dict, settings: dict[str, Any]) -> list[str]:
    """One line per key ``settings`` would change in ``params``: ``key: current -> new``, in preset order.

    A key params.yaml lacks shows ``(absent)`` as its current value (applying it is refused).
    """
    current = flatten(params)
    return [f"{key}: {_shown(current[key]) if key in current else '(absent)'} -> {_shown(value)}"
            for key, value in changed_settings(params, settings).items()]


def _shown(value: Any) -> str:
    return "null" if value is None else _format_value(value).replace(",", ", ")


def exp_run_command(settings: dict[str, Any], extra_args: list[str] = ()) -> list[str]:
    """``dvc exp run -S key=value ...`` that runs an experiment with ``settings`` on top of params.yaml."""
    command = ["dvc", "exp", "run"]
    for key, value in settings.items():
        command += ["-S", f"{key}={_format_value(value)}"]
    return command + list(extra_args)


def shell_line(command: list[str]) -> str:
    """The command quoted for a POSIX shell, to print or copy."""
    return " ".join(shlex.quote(part) for part in command)
