"""Named training presets: each method's recipe (``training/methods``) on its generator preset
(``models/methods``), the ``-tiny`` CPU variants, ablation swaps and stages.

``--cfg NAME`` resolves here: EG3D's exact-network presets (``ffhq512``, ``shapenet128``, ``tiny``,
``eg3d``, ``eg3d-tiny``), and every registered method and its ``-tiny`` variant.
"""

from __future__ import annotations

from models.methods import METHODS, method_names, pipeline_preset
from models.pipeline_config import with_component
from models.pipeline_discriminators import DISCRIMINATORS
from training.config import TrainConfig
from training.methods import RECIPES


def _exact_presets() -> dict[str, object]:
    presets = {}
    for recipe in RECIPES.values():
        presets.update(recipe.exact_presets)
    return presets


TRAIN_PRESETS = tuple(dict.fromkeys(
    tuple(_exact_presets()) + tuple(name for method in method_names() for name in (method, f"{method}-tiny"))))
"""Every ``--cfg`` name."""


def train_preset(name: str) -> TrainConfig:
    """The training config of a preset name (module docstring)."""
    exact = _exact_presets()
    if name in exact:
        config = exact[name]()
        config.cfg = name
        return config
    if name.removesuffix("-tiny") in METHODS:
        return pipeline_train_preset(name)
    raise ValueError(f"unknown training preset {name!r}; expected one of {', '.join(TRAIN_PRESETS)}")


def pipeline_train_preset(name: str) -> TrainConfig:
    """A method's recipe on its pipeline generator (methods.md section 3; original repos, not Carver,
    where they differ). ``<method>-tiny`` keeps the recipe's losses and optimiser with a CPU-sized
    generator and discriminator, batch 4, and schedules shortened to a few kimg."""
    tiny = name.endswith("-tiny")
    method = name.removesuffix("-tiny")
    if method not in RECIPES:
        raise ValueError(f"method {method!r} has no training recipe (training/methods/{method}.py)")
    recipe = RECIPES[method]
    G = pipeline_preset(name)
    if recipe.prepare is not None:
        G = recipe.prepare(G)
    config = recipe.build(G)
    config.cfg, config.generator = name, G
    config.metric_images = 10000
    if tiny:
        # CPU size: narrow D (each kind says how), batch 4, and every schedule over a few kimg.
        config.discriminator = DISCRIMINATORS.cls_of(config.discriminator).tiny(config.discriminator)
        loss = config.loss
        if loss.progressive_start:
            loss.progressive_start, loss.progressive_level_kimg, loss.progressive_fade_kimg = 16, 0.2, 0.1
        if loss.topk_interval_kimg:
            loss.topk_interval_kimg = 0.1
        loss.blur_fade_kimg = min(loss.blur_fade_kimg, 1.0)
        loss.geometry_points = 16
        loss.sdf_sphere_init_steps = min(loss.sdf_sphere_init_steps, 400)
        config.batch, config.kimg, config.tick_kimg, config.snap = 4, 4.0, 0.2, 2
        config.metric_images, config.workers, config.grid_seeds = 64, 1, 2
        config.ema_kimg = min(config.ema_kimg or 1.0, 1.0)
    config.grid_yaws = (-0.4, -0.2, 0.0, 0.2, 0.4)
    return config


def apply_components(config: TrainConfig, swaps: dict[str, str | None]) -> TrainConfig:
    """Ablations from the command line (``--embedder volume --decoder siren``): replace pipeline
    components (``models.pipeline_config.with_component``). An exact-network preset first becomes
    its method's recipe as a pipeline (its exact network has no swappable parts)."""
    swaps = {k: v for k, v in swaps.items() if v}
    if not swaps:
        return config
    if config.cfg in _exact_presets():
        recipes = {"tiny": "eg3d-tiny", "eg3d-tiny": "eg3d-tiny", "ffhq512": "eg3d", "eg3d": "eg3d"}
        if config.cfg not in recipes:
            raise ValueError(f"component swaps start from EG3D's FFHQ recipe (eg3d, eg3d-tiny), not {config.cfg!r}")
        config = pipeline_train_preset(recipes[config.cfg])
    generator = config.generator
    for component, kind in swaps.items():
        generator = with_component(generator, component, kind)
    config.generator = generator
    config.discriminator.img_resolution = config.shown_resolution
    config.cfg = config.cfg + "".join(f"+{component}={kind}" for component, kind in swaps.items())
    return config


def with_stage(config: TrainConfig, stage: int) -> TrainConfig:
    """A staged method's config at ``stage`` (StyleSDF: 1 volume renderer; 2 full pipeline, renderer frozen)."""
    method = config.cfg.split("+")[0].removesuffix("-tiny")
    recipe = RECIPES.get(method)
    if recipe is None or recipe.stage is None:
        raise ValueError("--stage applies to staged presets only (StyleSDF)")
    return recipe.stage(config, stage)
