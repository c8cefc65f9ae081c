"""GRAF's recipe ([GF]): DCGAN D on 32 px patches, R1 10 on reals, RMSprop 5e-4/1e-4, batch 8."""

from models.pipeline_config import PipelineConfig
from models.pipeline_discriminators import DCGANDiscriminator
from training.config import OptimConfig, PipelineLossConfig, TrainConfig
from training.recipes import Recipe, ema_kimg, register_recipe


def build(G: PipelineConfig) -> TrainConfig:
    return TrainConfig(
        batch=8, ema_kimg=ema_kimg(0.999, 8), ema_rampup=None,
        discriminator=DCGANDiscriminator.Config(img_resolution=G.points.patch_size, ndf=64),
        loss=PipelineLossConfig(r1_gamma=10.0),
        optim=OptimConfig(g_lr=5e-4, d_lr=1e-4, optimizer="rmsprop", g_reg_interval=0, d_reg_interval=1),
    )


register_recipe(Recipe("graf", build))
