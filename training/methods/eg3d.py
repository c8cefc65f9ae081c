"""EG3D's recipes: the exact network's named presets, and EG3D's recipe as a pipeline for ablations.

* ``ffhq512``: EG3D's FFHQ-512 recipe (batch 32, gamma 1, neural resolution 64, GPC 0.5).
* ``shapenet128``: EG3D's ShapeNet recipe (gamma 0.3, white background, ray box 0.1-2.6).
* ``tiny``: a small generator and discriminator at 64 px that learns the synthetic data on CPU;
  the schedules are shortened in proportion to the short run.
* ``eg3d-sdf-tiny``: ``tiny`` with an SDF head (ours, not an official EG3D configuration): the
  decoder's density channel is a signed distance (``osg_sdf``) rendered through StyleSDF's sigmoid
  density with a bounded width, with StyleSDF's sphere initialisation, eikonal and minimal-surface
  terms, so that the tri-planes hold a surface instead of fog (the bundled default model).
* the pipeline recipe (``--cfg eg3d --embedder volume``): EG3D's losses with a single-image
  pose-conditioned ResNet D (the dual D reads EG3D's raw image, which other embedders also make).
"""

import dataclasses

from models.decoders import OSGSDFFieldDecoder
from models.discriminator import discriminator_preset
from models.eg3d import eg3d_preset
from models.pipeline_config import PipelineConfig
from models.pipeline_discriminators import ResNetDiscriminator
from models.volume_rendering import LastDeltaIntegrator, SDFSigmoidDensity
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


SDF_ALPHA = 0.03
"""``eg3d-sdf-tiny``'s sigmoid width (world units) at the start and at most: about a pixel at the
neural resolution of 32 and a seventh of the initial sphere's radius ((3.1 - 2.25) / 4 = 0.21)."""


SDF_FAR = 3.1
"""``eg3d-sdf-tiny``'s ray end (EG3D's 3.3 ends outside the tri-plane box, where every identity's
background would get one colour)."""


def tiny_sdf() -> TrainConfig:
    config = tiny()
    generator = config.generator.copy()
    generator.preset = "eg3d-sdf"
    generator.decoder = OSGSDFFieldDecoder.Config(hidden=generator.decoder.hidden,
                                                  out_features=generator.decoder.out_features,
                                                  lr_multiplier=generator.decoder.lr_multiplier)
    generator.density = SDFSigmoidDensity.Config(alpha_init=SDF_ALPHA, alpha_max=SDF_ALPHA)
    # The background is the last sample's colour, taking the weight the ray has left (StyleSDF's
    # forced background): without it the SDF must close every pixel with a surface, and it learns a
    # wall at the front of the box with the picture painted on it. The rays end 0.4 behind the
    # head's centre, inside the tri-plane box, so that colour varies with the identity.
    generator.integrator = LastDeltaIntegrator.Config(force_background=True)
    generator.points = dataclasses.replace(generator.points, far=SDF_FAR)
    # EG3D's L1 density smoothness would fight a sharp surface; the eikonal term smooths the SDF instead.
    generator.extra = {**generator.extra, "density_reg": 0.0}
    generator.validate()
    config.generator = generator
    loss = config.loss
    # StyleSDF's minimal-surface weight; eikonal 10x StyleSDF's 0.1: with 0.1 the tri-plane SDF
    # learned fog (d flat at +0.05..0.3 through the head, a density of 3-7 per unit at alpha 0.03)
    # and a hole through every face by 12 kimg.
    loss.eikonal_weight, loss.minimal_surface_weight = 1.0, 0.05
    loss.geometry_points, loss.sdf_sphere_init_steps = 32, 400
    config.cfg = "eg3d-sdf-tiny"
    return config


def build(G: PipelineConfig) -> TrainConfig:
    return TrainConfig(
        batch=32,
        discriminator=ResNetDiscriminator.Config(img_resolution=G.img_resolution, c_dim=25),
        loss=PipelineLossConfig(r1_gamma=1.0, blur_init_sigma=10.0, blur_fade_kimg=200.0, density_reg=0.25),
        optim=OptimConfig(),
    )


register_recipe(Recipe("eg3d", build, exact_presets={"ffhq512": ffhq512, "shapenet128": shapenet128, "tiny": tiny,
                                                     "eg3d": ffhq512, "eg3d-tiny": tiny, "eg3d-sdf-tiny": tiny_sdf}))
