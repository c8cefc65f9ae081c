"""EG3D's recipes: the exact network's named presets, and EG3D's recipe as a pipeline for ablations.

* ``ffhq512``: EG3D's FFHQ-512 recipe (batch 32, gamma 1, neural resolution 64, GPC 0.5).
* ``shapenet128``: EG3D's ShapeNet recipe (gamma 0.3, white background, ray box 0.1-2.6).
* ``tiny``: a small generator and discriminator at 64 px that learns the synthetic data on CPU;
  the schedules are shortened in proportion to the short run.
* the pipeline recipe (``--cfg eg3d --embedder volume``): EG3D's losses with a single-image
  pose-conditioned ResNet D (the dual D reads EG3D's raw image, which other embedders also make).
"""

from models.discriminator import discriminator_preset
from models.eg3d import eg3d_preset
from models.pipeline_config import PipelineConfig
from models.pipeline_discriminators import ResNetDiscriminator
from training.config import LossConfig, OptimConfig, PipelineLossConfig, TrainConfig
from training.recipes import Recipe, register_recipe


def ffhq512() -> TrainConfig:
    return TrainConfig(cfg="ffhq512", generator=eg3d_preset("ffhq512"), discriminator=discriminator_preset("ffhq512"),
                       loss=LossConfig(r1_gamma=1.0, neural_rendering_resolution_initial=64),
                       batch=32, kimg=25000, tick_kimg=4, snap=50, metric_images=10000)


def shapenet128() -> TrainConfig:
    return TrainConfig(cfg="shapenet128", generator=eg3d_preset("shapenet128"),
                       discriminator=discriminator_preset("shapenet128"),
                       loss=LossConfig(r1_gamma=0.3, neural_rendering_resolution_initial=64),
                       batch=32, kimg=25000, tick_kimg=4, snap=50, metric_images=10000,
                       grid_yaws=(-2.0, -1.0, 0.0, 1.0, 2.0))


def tiny() -> TrainConfig:
    generator = eg3d_preset("tiny")
    # Short CPU runs: fade the blur and the pose swapping over a few kimg instead of hundreds.
    return TrainConfig(cfg="tiny", generator=generator, discriminator=discriminator_preset("tiny"),
                       loss=LossConfig(r1_gamma=1.0, blur_init_sigma=10.0, blur_fade_kimg=4.0,
                                       neural_rendering_resolution_initial=generator.neural_rendering_resolution,
                                       gpc_reg_fade_kimg=20.0),
                       batch=8, kimg=100, tick_kimg=0.5, snap=2, metric_images=256, workers=1,
                       grid_seeds=4, truncation_psi=0.7)


def build(G: PipelineConfig) -> TrainConfig:
    return TrainConfig(
        batch=32,
        discriminator=ResNetDiscriminator.Config(img_resolution=G.img_resolution, c_dim=25),
        loss=PipelineLossConfig(r1_gamma=1.0, blur_init_sigma=10.0, blur_fade_kimg=200.0, density_reg=0.25),
        optim=OptimConfig(),
    )


register_recipe(Recipe("eg3d", build, exact_presets={"ffhq512": ffhq512, "shapenet128": shapenet128, "tiny": tiny,
                                                     "eg3d": ffhq512, "eg3d-tiny": tiny}))
