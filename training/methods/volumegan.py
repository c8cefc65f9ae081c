"""VolumeGAN's recipe ([V]): progressive ResNet D 32 -> 256 (G grows with it), R1 10 every 16,
lr 0.002, style mixing 0.9, path length 2, 750k + 750k images per level, batch 64."""

from models.pipeline_config import PipelineConfig
from models.pipeline_discriminators import ResNetDiscriminator
from training.config import OptimConfig, PipelineLossConfig, TrainConfig
from training.recipes import Recipe, register_recipe


def build(G: PipelineConfig) -> TrainConfig:
    return TrainConfig(
        batch=64, ema_kimg=20.0,
        discriminator=ResNetDiscriminator.Config(img_resolution=G.img_resolution, progressive=True, min_resolution=32),
        loss=PipelineLossConfig(r1_gamma=10.0, style_mixing_prob=0.9, pl_weight=2.0, progressive_start=32,
                                progressive_generator=True, progressive_level_kimg=1500.0, progressive_fade_kimg=750.0),
        optim=OptimConfig(g_lr=0.002, d_lr=0.002),
    )


register_recipe(Recipe("volumegan", build))
