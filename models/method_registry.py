"""The methods: one generator preset per method, registered by the files of ``models/methods/``.

Each method file registers a function that returns its full-size :class:`PipelineConfig`
(``methods.md``'s numbers); ``<method>-tiny`` is that config through ``pipeline_config.tiny``
unless the method registers its own reduction. The training recipe of the same method lives in
``training/methods/<method>.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from models.pipeline_config import PipelineConfig, tiny


@dataclass(frozen=True)
class Method:
    """A registered method's generator side."""

    name: str
    """Preset name (``--cfg``)."""
    preset: Callable[[], PipelineConfig]
    """Its full-size generator config."""
    exact_generator: bool = False
    """Plain ``--cfg <name>`` trains a dedicated exact network (EG3D's ``TriPlaneGenerator``); this
    pipeline preset is its recipe for ablations."""

    def config(self, tiny_size: bool = False) -> PipelineConfig:
        config = self.preset()
        return tiny(config) if tiny_size else config


METHODS: dict[str, Method] = {}
"""Registered methods by name, in registration order."""


PresetFn = Callable[[], PipelineConfig]


def register_method(name: str, exact_generator: bool = False) -> Callable[[PresetFn], PresetFn]:
    """Decorator on a method's preset function."""

    def decorate(preset: PresetFn) -> PresetFn:
        if name in METHODS:
            raise ValueError(f"method {name!r} is registered twice")
        METHODS[name] = Method(name, preset, exact_generator)
        return preset

    return decorate
