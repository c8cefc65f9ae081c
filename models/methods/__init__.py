"""One file per method: each registers its generator preset (``models.method_registry``).

Importing this package imports every module in it, so a new method is one new file here.
"""

from __future__ import annotations

import importlib
import pkgutil

from models.method_registry import METHODS, Method
from models.pipeline_config import PipelineConfig

for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    importlib.import_module(f"{__name__}.{_module.name}")

ORDER = ("pigan", "graf", "giraffe", "volumegan", "stylenerf", "stylesdf", "gram", "epigraf", "eg3d")
"""Display order of the original nine; methods added later follow in name order."""


def method_names() -> tuple[str, ...]:
    """Every registered method, the original nine first."""
    return tuple(sorted(METHODS, key=lambda name: (ORDER.index(name) if name in ORDER else len(ORDER), name)))


def pipeline_methods() -> tuple[str, ...]:
    """Methods whose plain preset trains the pipeline generator (EG3D trains its exact network)."""
    return tuple(name for name in method_names() if not METHODS[name].exact_generator)


def get_method(name: str) -> Method:
    """A registered method by name (``-tiny`` suffix allowed)."""
    base = name.removesuffix("-tiny")
    if base not in METHODS:
        raise ValueError(f"unknown pipeline preset {name!r}; expected one of {', '.join(pipeline_preset_names())}")
    return METHODS[base]


def pipeline_preset_names() -> tuple[str, ...]:
    names = method_names()
    return names + tuple(f"{name}-tiny" for name in names)


def pipeline_preset(name: str) -> PipelineConfig:
    """The config of a method (``pigan``, ``gram``, ...) or its CPU-sized ``<method>-tiny`` variant."""
    return get_method(name).config(tiny_size=name.endswith("-tiny"))


PIPELINE_METHODS = pipeline_methods()
"""Methods built by the pipeline generator when trained plainly (every method but EG3D)."""
PIPELINE_PRESET_NAMES = pipeline_preset_names()
"""Every ``<method>`` and ``<method>-tiny`` preset name."""

__all__ = ["METHODS", "Method", "PIPELINE_METHODS", "PIPELINE_PRESET_NAMES", "get_method", "method_names",
           "pipeline_methods", "pipeline_preset", "pipeline_preset_names"]
