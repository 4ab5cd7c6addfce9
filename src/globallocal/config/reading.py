"""Reading params.yaml and walking it against a tree of frozen dataclasses (``globallocal.config.Params``).

A key that no class of the tree declares is unknown by construction and refused, naming the closest
known one (a typo such as ``adapt.lamda_adv_local`` must not silently train with something else); a
renamed key gets its translation; a key a class declares but params.yaml lacks is missing; every value
goes through its field's check (``globallocal.config.values``). Each failure is one UserError naming the
key or the file and what to do. The checks that span keys belong to the tree (``config.parse``).
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any

import yaml

from globallocal.errors import UserError

#: Keys that were renamed: writing the old one gets the translation instead of "not a known key".
RENAMED_KEYS = {
    "model.freeze_bn": (
        "params key 'model.freeze_bn' was replaced by 'model.bn_protocol': write bn_protocol: frozen "
        "for freeze_bn: true, learned for false (reference: affine frozen, statistics updated, as ADVENT)"
    ),
}


def load_params(path: Path = Path("params.yaml")) -> dict:
    """Read params.yaml as plain YAML; a missing file or broken YAML is a UserError naming the file."""
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


def known_keys(cls: type, prefix: str = "") -> list[str]:
    """Every key path the tree declares, sections included (``adapt``, ``adapt.lr``, ...)."""
    keys = []
    for field in dataclasses.fields(cls):
        key = f"{prefix}{field.name}"
        keys.append(key)
        if "section" in field.metadata:
            keys += known_keys(field.metadata["section"], f"{key}.")
    return keys


def _refuse_unknown_keys(node: dict, cls: type, prefix: str, known: list[str]) -> None:
    """Refuse, in params.yaml's order, the first key ``cls`` does not declare, naming the closest known key."""
    fields = {field.name: field for field in dataclasses.fields(cls)}
    for name, value in node.items():
        key = f"{prefix}{name}"
        if key in RENAMED_KEYS:
            raise UserError(RENAMED_KEYS[key])
        if name not in fields:
            close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.0)
            suggestion = f"; did you mean '{close[0]}'?" if close else ""
            raise UserError(f"params key '{key}' is not a known key{suggestion}")
        section = fields[name].metadata.get("section")
        if section is not None and isinstance(value, dict):
            _refuse_unknown_keys(value, section, f"{key}.", known)


def _build(node: Any, cls: type, prefix: str):
    if not isinstance(node, dict):
        raise UserError(f"params key '{prefix.rstrip('.')}' is {node!r}; expected a section of keys")
    values = {}
    for field in dataclasses.fields(cls):
        key = f"{prefix}{field.name}"
        if field.name not in node:
            raise UserError(f"params key '{key}' is missing from params.yaml; add it (see the README)")
        section = field.metadata.get("section")
        raw = node[field.name]
        values[field.name] = _build(raw, section, f"{key}.") if section else field.metadata["check"](raw, key)
    return cls(**values)


def build_tree(params: dict, cls: type):
    """The ``cls`` tree of a params.yaml mapping: unknown keys refused (in params.yaml's order) before
    missing keys and values are checked (in the tree's order)."""
    _refuse_unknown_keys(params, cls, "", known_keys(cls))
    return _build(params, cls, "")
