"""One rule for rebuilding the typed config dataclasses from their saved dicts."""

from __future__ import annotations

import dataclasses
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
