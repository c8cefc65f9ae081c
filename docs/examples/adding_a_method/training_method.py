"""Training side of the example method 'voxgram': pi-GAN's CoordConv D with a pose head and its
optimiser. Copy to ``training/methods/voxgram.py``."""

from models.pipeline_config import PipelineConfig
from models.pipeline_discriminators import CoordConvDiscriminator
from training.config import OptimConfig, PipelineLossConfig, TrainConfig
from training.recipes import Recipe, register_recipe


def build(G: PipelineConfig) -> TrainConfig:
    return TrainConfig(
        batch=32,
        discriminator=CoordConvDiscriminator.Config(img_resolution=G.img_resolution, pose_dim=2, mbstd_group_size=None),
        loss=PipelineLossConfig(r1_gamma=1.0, pose_weight=10.0),
        optim=OptimConfig(g_lr=5e-5, d_lr=2e-4, betas=(0.0, 0.9), g_reg_interval=0, d_reg_interval=1),
    )


register_recipe(Recipe("voxgram", build))
