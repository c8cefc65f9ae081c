"""GIRAFFE's recipe ([GI]): DCGAN D, R1 10, RMSprop 2.5e-4/1e-4, batch 32."""

from models.pipeline_config import PipelineConfig
from models.pipeline_discriminators import DCGANDiscriminator
from training.config import OptimConfig, PipelineLossConfig, TrainConfig
from training.recipes import Recipe, ema_kimg, register_recipe


def build(G: PipelineConfig) -> TrainConfig:
    return TrainConfig(
        batch=32, ema_kimg=ema_kimg(0.999, 32), ema_rampup=None,
        discriminator=DCGANDiscriminator.Config(img_resolution=G.img_resolution, ndf=64),
        loss=PipelineLossConfig(r1_gamma=10.0),
        optim=OptimConfig(g_lr=2.5e-4, d_lr=1e-4, optimizer="rmsprop", g_reg_interval=0, d_reg_interval=1),
    )


register_recipe(Recipe("giraffe", build))
