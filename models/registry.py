"""Registered components: each kind of each pipeline component is one class, found by its name.

A component class carries a nested ``Config`` dataclass holding only its own fields, and the facts
about the kind (what ws it reads, whether it outputs an SDF, ...) as class attributes. Registering
it under a kind name is the only place that name is written::

    @EMBEDDERS.register("triplane")
    class TriplaneEmbedder(nn.Module):
        @dataclass
        class Config(ComponentConfig):
            resolution: int = 256
            \"\"\"Tri-plane side in texels.\"\"\"

Configs are written as ``{"kind": <name>, **fields}`` and read back through the registry
(:meth:`Registry.config_from_dict`), so the kind string is compared nowhere else: code asks the
config's class (:meth:`Registry.cls_of`) for facts and builds it with :meth:`Registry.build`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from models.typed_config import dataclass_from_dict

T = TypeVar("T")


@dataclass
class ComponentConfig:
    """Base of every component config; ``kind`` is the registered name of the config's class."""

    kind: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        """``{"kind": name, **fields}``, JSON-serialisable."""
        return {"kind": self.kind, **dataclasses.asdict(self)}

    def replace(self, **changes: Any):
        """A copy with ``changes`` applied (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


class Registry(Generic[T]):
    """Component classes of one kind of component (embedders, decoders, ...) by name."""

    def __init__(self, component: str):
        self.component = component
        self._classes: dict[str, type[T]] = {}

    def register(self, kind: str) -> Callable[[type[T]], type[T]]:
        """Class decorator: register the class under ``kind`` and stamp the name on it and its Config."""

        def decorate(cls: type[T]) -> type[T]:
            if kind in self._classes:
                raise ValueError(f"{self.component} {kind!r} is registered twice")
            config_cls = cls.__dict__.get("Config")
            if config_cls is None or not issubclass(config_cls, ComponentConfig):
                raise TypeError(f"{cls.__name__} needs its own nested Config(ComponentConfig) dataclass")
            config_cls.kind = kind
            cls.kind = kind
            self._classes[kind] = cls
            return cls

        return decorate

    def kinds(self) -> tuple[str, ...]:
        """Registered names, in registration order."""
        return tuple(self._classes)

    def get(self, kind: str) -> type[T]:
        """The class registered as ``kind`` (ValueError naming the choices otherwise)."""
        try:
            return self._classes[kind]
        except (KeyError, TypeError):
            raise ValueError(f"unknown {self.component} {kind!r}; expected one of {', '.join(self._classes)}") from None

    def cls_of(self, config: ComponentConfig) -> type[T]:
        """The class a config belongs to."""
        return self.get(config.kind)

    def default_config(self, kind: str) -> ComponentConfig:
        """A fresh config of ``kind`` with its defaults."""
        return self.get(kind).Config()

    def config_from_dict(self, data: dict[str, Any] | ComponentConfig) -> ComponentConfig:
        """Rebuild a config written by :meth:`ComponentConfig.to_dict`; unknown keys are an error."""
        if isinstance(data, ComponentConfig):
            return data
        if not isinstance(data, dict) or "kind" not in data:
            raise ValueError(f"a {self.component} config must be a dict with a 'kind', got {data!r}")
        values = dict(data)
        cls = self.get(values.pop("kind"))
        return dataclass_from_dict(cls.Config, values, f"{self.component} {cls.kind!r} config")

    def build(self, config: ComponentConfig, *args: Any, **kwargs: Any) -> T:
        """Instantiate the config's class: ``cls(config, *args, **kwargs)``."""
        return self.cls_of(config)(config, *args, **kwargs)
