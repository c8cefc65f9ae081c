"""Fresh generators: from a config of either description (pipeline or EG3D), or a preset name."""

from __future__ import annotations

from models.eg3d import EG3DConfig, eg3d_preset
from models.methods import pipeline_preset
from models.methods.eg3d import from_eg3d
from models.pipeline import PipelineGenerator
from models.pipeline_config import PipelineConfig

DESCRIPTIONS = {"pipeline": lambda config: config, "eg3d": from_eg3d}
"""``config.method`` -> the pipeline config of that description (EG3D's architecture is a preset)."""


def pipeline_config_of(config: PipelineConfig | EG3DConfig) -> PipelineConfig:
    """The pipeline config a generator is built from."""
    if config.method not in DESCRIPTIONS:
        raise ValueError(f"unknown generator method {config.method!r}; known: {', '.join(sorted(DESCRIPTIONS))}")
    return DESCRIPTIONS[config.method](config)


def build_generator(config: PipelineConfig | EG3DConfig) -> PipelineGenerator:
    """A freshly initialised generator."""
    return PipelineGenerator(pipeline_config_of(config))


def build_pipeline(config: PipelineConfig | str) -> PipelineGenerator:
    """A freshly initialised generator from a config or a preset name ('pigan', 'gram-tiny', ...)."""
    return PipelineGenerator(pipeline_preset(config) if isinstance(config, str) else config)


def build_eg3d(config: EG3DConfig | str) -> PipelineGenerator:
    """A freshly initialised EG3D generator from its config or an ``eg3d_preset`` name."""
    return PipelineGenerator(from_eg3d(eg3d_preset(config) if isinstance(config, str) else config))
