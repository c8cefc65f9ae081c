"""One rule for rebuilding the typed config dataclasses from their saved dicts."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, TypeVar

T = TypeVar("T")


def dataclass_from_dict(cls: type[T], data: dict[str, Any], what: str | None = None) -> T:
    """``cls(**data)``, with unknown keys an error that names them (``what``: the config's name in
    the message; default the class name)."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {what or cls.__name__} keys: {', '.join(unknown)}")
    return cls(**data)


MAX_CONFIG_INT = 1 << 16
"""Largest integer a config field may hold (sizes, counts, channels: EG3D's channel_base is 32768)."""
MAX_CONFIG_FLOAT = 1e6
"""Largest magnitude of a float field (ray ranges, scales, kimg)."""
MAX_CONFIG_ITEMS = 4096
"""Most items a list, tuple or dict field may hold."""
MAX_CONFIG_NESTING = 16
"""Deepest nesting of dataclasses and containers in a config."""


def check_values(config: Any, what: str = "config") -> None:
    """Raise ValueError naming the first field of ``config`` (a dataclass, walked into nested dataclasses,
    lists, tuples and dicts) whose value has the wrong plain type for its annotation, or is out of range:
    ints outside [0, :data:`MAX_CONFIG_INT`], non-finite floats or floats beyond :data:`MAX_CONFIG_FLOAT`,
    containers longer than :data:`MAX_CONFIG_ITEMS`. Runs before anything is built, so a file's config
    cannot ask for a huge or negative size (a checkpoint's only bound on work and memory)."""
    _check(config, what, None, 0)


_PLAIN_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (float, int), "bool": (bool,), "str": (str,)}
"""Annotation text -> the types a value of it may have (JSON writes whole floats as ints)."""


def _expected(annotation: Any) -> tuple[type, ...] | None:
    """The plain types an annotation (a string under postponed evaluation) allows, None if not a plain one."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    options = [part.strip() for part in text.split("|")]
    allowed: list[type] = []
    for option in options:
        if option == "None":
            allowed.append(type(None))
        elif option in _PLAIN_TYPES:
            allowed.extend(_PLAIN_TYPES[option])
        else:
            return None  # containers, unions with other types: walked, not type-checked
    return tuple(allowed)


def _check(value: Any, where: str, annotation: Any, depth: int) -> None:
    if depth > MAX_CONFIG_NESTING:
        raise ValueError(f"{where}: nested too deeply")
    expected = _expected(annotation) if annotation is not None else None
    if expected is not None and (not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected)):
        raise ValueError(f"{where} must be {annotation}, not {type(value).__name__}")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if not 0 <= value <= MAX_CONFIG_INT:
            raise ValueError(f"{where} is {value}: out of range [0, {MAX_CONFIG_INT}]")
    elif isinstance(value, float):
        if not math.isfinite(value) or abs(value) > MAX_CONFIG_FLOAT:
            raise ValueError(f"{where} is {value}: not a finite value within +-{MAX_CONFIG_FLOAT:g}")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            _check(getattr(value, f.name), f"{where}.{f.name}", f.type, depth + 1)
    elif isinstance(value, (list, tuple, dict)):
        if len(value) > MAX_CONFIG_ITEMS:
            raise ValueError(f"{where} has {len(value)} items (at most {MAX_CONFIG_ITEMS})")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            _check(item, f"{where}[{key!r}]", None, depth + 1)
