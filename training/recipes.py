"""The training side of each method: discriminator, loss terms, optimisers, batch and schedules.

Each file of ``training/methods/`` registers one :class:`Recipe` under the method's name (the
generator side of the same method is ``models/methods/<method>.py``). ``training.presets`` turns a
recipe into a full :class:`TrainConfig`, and its ``-tiny`` variant into a CPU-sized one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from models.pipeline_config import PipelineConfig
from training.config import TrainConfig


@dataclass(frozen=True)
class Recipe:
    """A method's training recipe."""

    name: str
    """Method name (as in ``models.method_registry``)."""
    build: Callable[[PipelineConfig], TrainConfig]
    """Generator config -> TrainConfig with the discriminator, loss, optimiser, batch and EMA set."""
    prepare: Callable[[PipelineConfig], PipelineConfig] | None = None
    """Changes the recipe makes to the generator before training (StyleSDF trains stage 1 first)."""
    stage: Callable[[TrainConfig, int], TrainConfig] | None = None
    """``--stage N``: the config of stage N after a stage-1 config (None: one-stage method)."""
    exact_presets: dict[str, Callable[[], TrainConfig]] = field(default_factory=dict)
    """Named presets that train a dedicated exact network (EG3D's ``ffhq512``, ``shapenet128``, ``tiny``)."""


RECIPES: dict[str, Recipe] = {}
"""Registered recipes by method name."""


def register_recipe(recipe: Recipe) -> Recipe:
    if recipe.name in RECIPES:
        raise ValueError(f"training recipe {recipe.name!r} is registered twice")
    RECIPES[recipe.name] = recipe
    return recipe


def ema_kimg(beta_per_step: float, batch: int) -> float:
    """Half-life in kimg of a per-step EMA decay (pi-GAN/GRAM's 0.999 at their batch)."""
    return math.log(0.5) / math.log(beta_per_step) * batch / 1000
