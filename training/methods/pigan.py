"""pi-GAN's recipe ([P] CelebA): CoordConv D with a pose head growing 32 -> 64, R1 0.2, pose 15,
top-k, Adam 6e-5/2e-4 (0, 0.9), clip 10, batch 56."""

from models.pipeline_config import PipelineConfig
from models.pipeline_discriminators import CoordConvDiscriminator
from training.config import OptimConfig, PipelineLossConfig, TrainConfig
from training.recipes import Recipe, ema_kimg, register_recipe


def build(G: PipelineConfig) -> TrainConfig:
    return TrainConfig(
        batch=56, ema_kimg=ema_kimg(0.999, 56), ema_rampup=None,
        discriminator=CoordConvDiscriminator.Config(img_resolution=G.img_resolution, pose_dim=2, mbstd_group_size=None),
        loss=PipelineLossConfig(r1_gamma=0.2, pose_weight=15.0, topk_start=1.0, topk_min=0.6, topk_decay=0.99,
                                topk_interval_kimg=2000 * 56 / 1000, progressive_start=32,
                                progressive_level_kimg=10000 * 56 / 1000, progressive_fade_kimg=10000 * 56 / 1000),
        optim=OptimConfig(g_lr=6e-5, d_lr=2e-4, betas=(0.0, 0.9), g_reg_interval=0, d_reg_interval=1, grad_clip=10.0),
    )


register_recipe(Recipe("pigan", build))
