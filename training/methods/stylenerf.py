"""StyleNeRF's recipe ([SN] paper256): progressive ResNet D (G grows with it), R1 0.5, lr 0.0025,
mixing 0.9, path length 2, NeRF-path regulariser 2, batch 64, EMA 20 kimg."""

from models.pipeline_config import PipelineConfig
from models.pipeline_discriminators import ResNetDiscriminator
from training.config import OptimConfig, PipelineLossConfig, TrainConfig
from training.recipes import Recipe, register_recipe


def build(G: PipelineConfig) -> TrainConfig:
    return TrainConfig(
        batch=64, ema_kimg=20.0,
        discriminator=ResNetDiscriminator.Config(img_resolution=G.img_resolution, progressive=True, min_resolution=32),
        loss=PipelineLossConfig(r1_gamma=0.5, style_mixing_prob=0.9, pl_weight=2.0, nerf_path_weight=2.0,
                                progressive_start=32, progressive_generator=True, progressive_level_kimg=1500.0,
                                progressive_fade_kimg=500.0),
        optim=OptimConfig(g_lr=0.0025, d_lr=0.0025),
    )


register_recipe(Recipe("stylenerf", build))
