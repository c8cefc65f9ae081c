"""GRAM's recipe ([G]): CoordConv D with a pose head, R1 1 each step, pose 15 on fakes and reals,
Adam 2e-5/2e-4 (0, 0.9), clip 1, batch 32."""

from models.pipeline_config import PipelineConfig
from models.pipeline_discriminators import CoordConvDiscriminator
from training.config import OptimConfig, PipelineLossConfig, TrainConfig
from training.recipes import Recipe, ema_kimg, register_recipe


def build(G: PipelineConfig) -> TrainConfig:
    return TrainConfig(
        batch=32, ema_kimg=ema_kimg(0.999, 32), ema_rampup=None,
        discriminator=CoordConvDiscriminator.Config(img_resolution=G.img_resolution, pose_dim=2, mbstd_group_size=None),
        loss=PipelineLossConfig(r1_gamma=1.0, pose_weight=15.0, real_pose_weight=15.0),
        optim=OptimConfig(g_lr=2e-5, d_lr=2e-4, betas=(0.0, 0.9), g_reg_interval=0, d_reg_interval=1, grad_clip=1.0),
    )


register_recipe(Recipe("gram", build))
