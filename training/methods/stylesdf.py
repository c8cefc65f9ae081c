"""StyleSDF's recipe ([S]), in two stages.

Stage 1 trains the SDF volume renderer alone (RGB at the neural resolution, no upsampler):
CoordConv D with a pose head, R1 10, view 15 (smooth L1), eikonal 0.1, minimal surface 0.05, sphere
initialisation, Adam 2e-5/2e-4 (0, 0.9), batch 24. Stage 2 adds the StyleGAN2 upsampler to the full
resolution with the renderer's mapping, embedder, decoder and renderer frozen; the 2D decoder
(``StyleSDFDecoderUpsampler``) carries its own mapping (``upsampler.net.style``), which trains with it
as the official ``decoder.style`` does: StyleGAN2 D, R1 10 every 16, lr 0.002, mixing 0.9, path
length 2 (train_full_pipeline.py).
"""

from models.methods import pipeline_preset
from models.pipeline_config import PipelineConfig
from models.pipeline_discriminators import CoordConvDiscriminator, ResNetDiscriminator
from models.upsamplers import NoUpsampler
from training.config import OptimConfig, PipelineLossConfig, TrainConfig
from training.recipes import Recipe, ema_kimg, register_recipe


def stylesdf_stage(config: PipelineConfig, stage: int) -> PipelineConfig:
    """The generator of stage 1 (volume renderer) or 2 (full pipeline, renderer frozen)."""
    config = config.copy()
    full = pipeline_preset(config.preset)
    if stage == 1:
        config.upsampler = NoUpsampler.Config()
        config.img_resolution = config.neural_rendering_resolution = full.neural_rendering_resolution
        config.frozen = ()
    elif stage == 2:
        config.upsampler = full.upsampler
        config.img_resolution, config.neural_rendering_resolution = full.img_resolution, full.neural_rendering_resolution
        config.frozen = ("mapping_network", "embedder", "decoder", "renderer")
    else:
        raise ValueError(f"StyleSDF has stages 1 and 2, not {stage}")
    return config


def build(G: PipelineConfig) -> TrainConfig:
    return TrainConfig(
        batch=24, ema_kimg=ema_kimg(0.5 ** (32 / 10000), 24), ema_rampup=None,
        discriminator=CoordConvDiscriminator.Config(img_resolution=G.img_resolution, pose_dim=2, mbstd_group_size=None),
        loss=PipelineLossConfig(r1_gamma=10.0, pose_weight=15.0, pose_loss="smooth_l1", eikonal_weight=0.1,
                                minimal_surface_weight=0.05, stage=1, sdf_sphere_init_steps=1000),
        optim=OptimConfig(g_lr=2e-5, d_lr=2e-4, betas=(0.0, 0.9), g_reg_interval=0, d_reg_interval=1),
    )


def stage2_train_config(stage1: TrainConfig) -> TrainConfig:
    """The stage-2 recipe after a stage-1 config."""
    config = TrainConfig.from_dict(stage1.to_dict())
    config.generator = stylesdf_stage(stage1.generator, 2)
    res = config.generator.img_resolution
    cpu_sized = res <= 64  # a -tiny preset (32 px); StyleSDF's own stage 2 makes 1024 px images
    config.discriminator = ResNetDiscriminator.Config(
        img_resolution=res,
        channel_base=stage1.discriminator.channel_base * 2 if cpu_sized else 32768,
        channel_max=stage1.discriminator.channel_max if cpu_sized else 512)
    config.loss = PipelineLossConfig(r1_gamma=10.0, style_mixing_prob=0.9, pl_weight=2.0, stage=2)
    config.optim = OptimConfig(g_lr=0.002, d_lr=0.002)
    config.batch = stage1.batch if cpu_sized else 32  # [S]: 8 per GPU on 4 GPUs
    config.ema_kimg, config.ema_rampup = ema_kimg(0.5 ** (32 / 10000), config.batch), None
    return config


def stage(config: TrainConfig, number: int) -> TrainConfig:
    if number == 1:
        return config
    if number == 2:
        stage2 = stage2_train_config(config)
        stage2.cfg = config.cfg + "-stage2"
        return stage2
    raise ValueError(f"--stage must be 1 or 2, not {number}")


register_recipe(Recipe("stylesdf", build, prepare=lambda G: stylesdf_stage(G, 1), stage=stage))
