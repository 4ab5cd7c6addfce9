"""What a valid params.yaml value is: one declaration per kind of value (a bounded number, a choice, a
[width, height] pair, a path, ...), used beside each field of the typed tree (``globallocal.config.sections``).

Each declaration is a dataclass field without a default whose metadata holds ``check(raw, key)``: it
returns the parsed value or raises a UserError naming the key and what is allowed. Numbers must be finite.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from globallocal.data.labels import CLASS_NAMES
from globallocal.errors import UserError

Check = Callable[[Any, str], Any]


def declared(check: Check) -> Any:
    """A dataclass field without a default whose value ``check(raw, key)`` parses and validates."""
    return dataclasses.field(metadata={"check": check})


def section(cls: type) -> Any:
    """A nested section: a field holding the frozen dataclass ``cls``."""
    return dataclasses.field(metadata={"section": cls})


def _parses_as_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _unquoted_is(text: str, kind) -> bool:
    """Whether YAML would read ``text`` as a ``kind`` number if it were written without quotes."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    return isinstance(value, kind) and not isinstance(value, bool)


def _number_value(value: Any, key: str, minimum: float, integer: bool, strict: bool):
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        hint = ""
        if isinstance(value, str) and _unquoted_is(value, kind):
            hint = " (it is quoted, so YAML reads it as text: remove the quotes)"
        elif isinstance(value, str) and _parses_as_number(value) and not integer:
            hint = " (YAML reads it as text: write it with a dot, e.g. 1.0e-3, and without quotes)"
        raise UserError(f"params key '{key}' is {value!r}; expected {'an integer' if integer else 'a number'}{hint}")
    if not math.isfinite(value):
        raise UserError(f"params key '{key}' is {value!r}; expected a finite number")
    if value < minimum or (strict and value == minimum):
        bound = f"> {minimum}" if strict else f">= {minimum}"
        raise UserError(f"params key '{key}' is {value!r}; it must be {bound}")
    return value


def number(minimum: float = 0.0, strict: bool = False, nullable: bool = False) -> Any:
    """A finite float >= minimum (> minimum when strict); None allowed when nullable."""
    def check(value, key):
        if value is None and nullable:
            return None
        return float(_number_value(value, key, minimum, integer=False, strict=strict))
    return declared(check)


def integer(minimum: int = 0, odd: bool = False, allowed: tuple[int, ...] | None = None) -> Any:
    """An integer >= minimum (and odd, or one of ``allowed``, when asked)."""
    def check(value, key):
        value = _number_value(value, key, minimum, integer=True, strict=False)
        if allowed is not None and value not in allowed:
            raise UserError(f"params key '{key}' is {value!r}; allowed values: {', '.join(map(str, allowed))}")
        if odd and value % 2 == 0:
            raise UserError(f"params key '{key}' is {value}; it must be odd (1, 3, 5, ...)")
        return value
    return declared(check)


def fraction(open_at_zero: bool = False, nullable: bool = False) -> Any:
    """A number in [0, 1] ((0, 1] when open_at_zero); None allowed when nullable."""
    def check(value, key):
        if value is None and nullable:
            return None
        value = _number_value(value, key, 0.0, integer=False, strict=False)
        if value > 1:
            raise UserError(f"params key '{key}' is {value!r}; it must lie in [0, 1]")
        if open_at_zero and value == 0:
            raise UserError(f"params key '{key}' is 0; it must lie in (0, 1], or be null")
        return float(value)
    return declared(check)


def choice(*allowed: str) -> Any:
    def check(value, key):
        if value not in allowed:
            raise UserError(f"params key '{key}' is {value!r}; allowed values: {', '.join(allowed)}")
        return value
    return declared(check)


def flag() -> Any:
    def check(value, key):
        if not isinstance(value, bool):
            raise UserError(f"params key '{key}' is {value!r}; expected true or false")
        return value
    return declared(check)


def size(nullable: bool = False) -> Any:
    """[width, height], two positive integers -> (width, height); None allowed when nullable."""
    def check(value, key):
        if value is None and nullable:
            return None
        if (
            not isinstance(value, (list, tuple))
            or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
        ):
            also = " or null" if nullable else ""
            raise UserError(f"params key '{key}' is {value!r}; expected [width, height], two positive integers{also}")
        return int(value[0]), int(value[1])
    return declared(check)


def path(nullable: bool = False) -> Any:
    def check(value, key):
        if value is None and nullable:
            return None
        if not isinstance(value, str) or not value:
            raise UserError(f"params key '{key}' is {value!r}; expected a path")
        return Path(value)
    return declared(check)


def adam_betas() -> Any:
    def check(value, key):
        if not (isinstance(value, list) and len(value) == 2
                and all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in value)):
            raise UserError(f"params key '{key}' is {value!r}; expected two numbers in [0, 1)")
        return float(value[0]), float(value[1])
    return declared(check)


def endpoint() -> Any:
    """``host:port``."""
    def check(value, key):
        host, _, port = str(value).rpartition(":")
        if not (isinstance(value, str) and host and port.isdigit()):
            raise UserError(f"params key '{key}' is {value!r}; expected 'host:port'")
        return value
    return declared(check)


def device() -> Any:
    def check(value, key):
        if not isinstance(value, str) or not (value in ("auto", "cpu", "cuda") or value.startswith("cuda:")):
            raise UserError(f"params key '{key}' is {value!r}; allowed values: auto, cpu, cuda, cuda:N")
        return value
    return declared(check)


def workers() -> Any:
    """A count, or ``auto`` (resolved by ``data.loading.resolve_num_workers`` where the CPUs are known)."""
    def check(value, key):
        return "auto" if value == "auto" else _number_value(value, key, 0, integer=True, strict=False)
    return declared(check)


def threads() -> Any:
    """A thread count (at least 1), or ``auto`` (torch's default: ``runtime.use_cpu_threads``)."""
    def check(value, key):
        return "auto" if value == "auto" else _number_value(value, key, 1, integer=True, strict=False)
    return declared(check)


def class_names() -> Any:
    """A list of Cityscapes class names -> their train ids."""
    def check(value, key):
        if not isinstance(value, list):
            raise UserError(f"params key '{key}' is {value!r}; expected a list of class names")
        unknown = [name for name in value if name not in CLASS_NAMES]
        if unknown:
            raise UserError(f"params key '{key}' names unknown classes {unknown}; allowed: {', '.join(CLASS_NAMES)}")
        return tuple(CLASS_NAMES.index(name) for name in value)
    return declared(check)
