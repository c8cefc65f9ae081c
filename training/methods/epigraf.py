"""EpiGRAF's recipe ([EP]): patch D with hyper-modulation, R1 0.0002 res^2 / batch, blur 10 over
200 kimg, batch 64, 50000 kimg."""

from models.pipeline_config import PipelineConfig
from models.pipeline_discriminators import PatchDiscriminator
from training.config import OptimConfig, PipelineLossConfig, TrainConfig
from training.recipes import Recipe, register_recipe


def build(G: PipelineConfig) -> TrainConfig:
    return TrainConfig(
        batch=64, kimg=50000.0,
        discriminator=PatchDiscriminator.Config(img_resolution=G.points.patch_size, channel_base=16384),
        loss=PipelineLossConfig(r1_gamma=0.0002 * G.img_resolution**2 / 64, blur_init_sigma=10.0, blur_fade_kimg=200.0),
        optim=OptimConfig(g_lr=0.0025, d_lr=0.002),
    )


register_recipe(Recipe("epigraf", build))
