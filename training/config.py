"""Typed training configuration: one dataclass per concern, named presets, and CLI overrides.

A resolved :class:`TrainConfig` is written as JSON beside every run (``training_options.json``)
and inside every resumable training state, so a run can always be rebuilt exactly.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from models.discriminator import DiscriminatorConfig, discriminator_preset
from models.eg3d import EG3DConfig, eg3d_preset
from models.pipeline_config import PIPELINE_METHODS, PipelineConfig, pipeline_preset, with_component
from models.pipeline_discriminators import PipelineDiscriminatorConfig
from models.typed_config import dataclass_from_dict

AmpMode = Literal["off", "bf16", "fp16"]


@dataclass
class LossConfig:
    """EG3D's StyleGAN2 loss with dual discrimination (density and GPC weights live in the
    generator's rendering config, as in the official code)."""

    r1_gamma: float = 1.0
    """R1 weight on real image and image_raw (applied as gamma / 2)."""
    style_mixing_prob: float = 0.0
    """Probability of style mixing in G steps."""
    blur_init_sigma: float = 10.0
    """Initial std (pixels) of the Gaussian blur applied to images shown to D."""
    blur_fade_kimg: float = 200.0
    """kimg over which the blur fades to zero (EG3D: 200 * batch / 32)."""
    neural_rendering_resolution_initial: int = 64
    """Neural rendering resolution at the start of training."""
    neural_rendering_resolution_final: int | None = None
    """Neural rendering resolution at the end of the fade (None: no fade)."""
    neural_rendering_resolution_fade_kimg: float = 1000.0
    """kimg over which the neural rendering resolution fades."""
    gpc_reg_fade_kimg: float = 1000.0
    """kimg over which the pose-swapping probability fades from 1 to ``gpc_reg_prob``."""
    dual_discrimination: bool = True
    """Show D both the final image and the upsampled raw neural image (R1 on both)."""
    filter_mode: str = "antialiased"
    """Resampling used to make the real ``image_raw`` (and D's upsampling of it)."""
    blur_raw_target: bool = True
    """Blur the real raw image with the same schedule as the full image."""


@dataclass
class PipelineLossConfig:
    """Loss terms and schedules of a pipeline method (zero weights switch terms off)."""

    r1_gamma: float = 10.0
    """R1 weight on real images (applied as gamma / 2)."""
    blur_init_sigma: float = 0.0
    """Initial std (pixels) of the blur on D's inputs."""
    blur_fade_kimg: float = 0.0
    """kimg over which the blur fades to zero."""
    pose_weight: float = 0.0
    """D's pose head regresses the fakes' (yaw, elevation): weight in the G and D losses."""
    real_pose_weight: float = 0.0
    """Pose regression on real images with their dataset poses (GRAM)."""
    pose_loss: str = "mse"
    """'mse' (pi-GAN, GRAM) or 'smooth_l1' (StyleSDF)."""
    eikonal_weight: float = 0.0
    """StyleSDF's (|grad d| - 1)^2 weight."""
    minimal_surface_weight: float = 0.0
    """StyleSDF's exp(-100 |d|) weight."""
    pl_weight: float = 0.0
    """StyleGAN2 path-length regulariser weight, run with the G regularisers (VolumeGAN, StyleNeRF: 2)."""
    pl_decay: float = 0.01
    """Decay of the running mean path length."""
    pl_batch_shrink: int = 2
    """The path-length pass uses batch / this many samples (StyleGAN2)."""
    nerf_path_weight: float = 0.0
    """StyleNeRF's NeRF-path regulariser: L2 between the volume-rendered RGB at random sub-pixel
    points of the output image and the upsampled image there (StyleNeRF: 2)."""
    nerf_path_points: int = 16
    """The regulariser's points per image side (16 x 16 random sub-pixel locations)."""
    sdf_sphere_init_steps: int = 0
    """Steps fitting the SDF to a sphere of radius (far - near) / 4 before training (StyleSDF)."""
    geometry_points: int = 64
    """Rays per identity whose samples carry the eikonal and minimal-surface terms."""
    density_reg: float = 0.0
    """EG3D's L1 density smoothness weight (0: off)."""
    density_reg_p_dist: float = 0.004
    """Perturbation std of the smoothness pairs, in units of the scene box (EG3D: 0.004 of a 1-wide box)."""
    topk_start: float = 1.0
    """Fraction of the fakes (best scored) kept in G's loss at the start (1: top-k off)."""
    topk_min: float = 0.6
    """Floor of the kept fraction."""
    topk_decay: float = 0.99
    """The fraction is multiplied by this every ``topk_interval_kimg``."""
    topk_interval_kimg: float = 0.0
    """kimg per decay step (pi-GAN: 2000 steps; 0: no decay)."""
    progressive_start: int = 0
    """D's first input resolution when growing progressively (0: full resolution from the start)."""
    progressive_level_kimg: float = 0.0
    """kimg spent per resolution level, fade included."""
    progressive_fade_kimg: float = 0.0
    """kimg of fade-in at the start of each new level."""
    progressive_generator: bool = False
    """Grow the generator's StyleGAN upsampler with D (VolumeGAN, StyleNeRF); else G renders the
    full size and D sees it pooled (pi-GAN's renderer cannot grow)."""
    style_mixing_prob: float = 0.0
    """Probability of style mixing in G steps (StyleGAN2-mapped methods)."""
    stage: int = 0
    """StyleSDF's stage (1: volume renderer, 2: upsampler with the renderer frozen); 0: one-stage methods."""
    kind: str = "pipeline"
    """Marks this loss config in saved runs (EG3D's is LossConfig)."""


@dataclass
class OptimConfig:
    """Adam settings with StyleGAN2's lazy-regularisation correction."""

    g_lr: float = 0.0025
    """Generator learning rate."""
    d_lr: float = 0.002
    """Discriminator learning rate."""
    betas: tuple[float, float] = (0.0, 0.99)
    """Adam betas (before the lazy-regularisation correction)."""
    eps: float = 1e-8
    """Adam epsilon."""
    g_reg_interval: int = 4
    """Run the density regulariser every this many G steps (0: never)."""
    d_reg_interval: int = 16
    """Run R1 every this many D steps (0: never)."""
    optimizer: str = "adam"
    """'adam' or 'rmsprop' (GRAF and GIRAFFE's original optimiser; betas and eps then unused)."""
    grad_clip: float | None = None
    """Clip each network's gradient norm to this (pi-GAN 10, GRAM 1; None: off)."""


@dataclass
class TrainConfig:
    """Everything that defines a training run."""

    cfg: str = "tiny"
    """Preset the run started from."""
    data: str = ""
    """Training data: an EG3D zip or folder with dataset.json."""
    outdir: str = "runs"
    """Folder holding the numbered run directories."""
    generator: EG3DConfig | PipelineConfig = field(default_factory=EG3DConfig)
    """Generator architecture: EG3D's exact network, or a pipeline composition."""
    discriminator: DiscriminatorConfig | PipelineDiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    """Discriminator architecture (EG3D's dual discriminator, or a pipeline one)."""
    loss: LossConfig | PipelineLossConfig = field(default_factory=LossConfig)
    """Loss and schedules (EG3D's, or the pipeline methods')."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimisers."""
    batch: int = 32
    """Total batch size over all GPUs (images per optimiser step)."""
    batch_gpu: int | None = None
    """Images per forward pass on one GPU; smaller than batch / gpus accumulates gradients."""
    gpus: int = 1
    """Number of processes (torchrun's world size)."""
    kimg: float = 25000.0
    """Training length in thousands of real images shown to D."""
    tick_kimg: float = 4.0
    """Progress-log interval in kimg."""
    snap: int = 50
    """Snapshot (network, state, samples, metrics) every this many ticks."""
    seed: int = 0
    """Random seed (each rank offsets it by its rank)."""
    amp: AmpMode = "off"
    """Mixed precision for G and D forward passes on CUDA."""
    ema_kimg: float | None = None
    """Half-life of the generator EMA in kimg (None: batch * 10 / 32)."""
    ema_rampup: float | None = 0.05
    """EMA ramp-up: half-life at most this fraction of the images seen so far (None: off)."""
    metrics: list[str] = field(default_factory=lambda: ["swd"])
    """Metrics computed at each snapshot."""
    metric_images: int = 1024
    """Real and fake images per metric evaluation."""
    init: str | None = None
    """Generator snapshot whose matching weights initialise G (StyleSDF stage 2 from stage 1)."""
    inception: str | None = None
    """TorchScript Inception feature network for the fid and kid metrics (user-supplied file)."""
    workers: int = 2
    """Data-loading worker processes per rank."""
    grid_seeds: int = 4
    """Fixed latents in the sample grid (rows)."""
    grid_yaws: tuple[float, ...] = (-0.5, -0.25, 0.0, 0.25, 0.5)
    """Camera yaws (radians) of the sample grid columns."""
    truncation_psi: float = 0.7
    """Truncation of the sample grid."""

    def __post_init__(self):
        # Saved runs are dicts; the pipeline's configs carry a marker key that says which type.
        if isinstance(self.generator, dict):
            pipeline = self.generator.get("method") == "pipeline"
            self.generator = (PipelineConfig if pipeline else EG3DConfig).from_dict(self.generator)
        if isinstance(self.discriminator, dict):
            cls = PipelineDiscriminatorConfig if "kind" in self.discriminator else DiscriminatorConfig
            self.discriminator = cls.from_dict(self.discriminator)
        if isinstance(self.loss, dict):
            cls = PipelineLossConfig if self.loss.get("kind") == "pipeline" else LossConfig
            self.loss = dataclass_from_dict(cls, self.loss)
        if isinstance(self.optim, dict):
            self.optim = dataclass_from_dict(OptimConfig, self.optim)
        self.optim.betas = tuple(self.optim.betas)
        self.grid_yaws = tuple(self.grid_yaws)

    @property
    def batch_per_gpu(self) -> int:
        """Images per forward pass on one rank."""
        return self.batch_gpu or self.batch // self.gpus

    @property
    def shown_resolution(self) -> int:
        """Size of the images D sees: the patch size in patch-wise training, else the image size."""
        g = self.generator
        if isinstance(g, PipelineConfig) and g.points.patch != "none":
            return g.points.patch_size
        return g.img_resolution

    @property
    def ema_half_life_kimg(self) -> float:
        return self.ema_kimg if self.ema_kimg is not None else self.batch * 10 / 32

    def validate(self) -> None:
        """Raise ValueError with a clear message for inconsistent settings."""
        if self.batch < 1 or self.gpus < 1:
            raise ValueError("--batch and --gpus must be positive")
        if self.batch % self.gpus != 0:
            raise ValueError(f"--batch {self.batch} is not divisible by --gpus {self.gpus}")
        per_rank = self.batch // self.gpus
        if per_rank % self.batch_per_gpu != 0:
            raise ValueError(f"--batch-gpu {self.batch_per_gpu} does not divide the per-GPU batch {per_rank}")
        pipeline = isinstance(self.generator, PipelineConfig)
        if pipeline != isinstance(self.discriminator, PipelineDiscriminatorConfig) or pipeline != isinstance(self.loss, PipelineLossConfig):
            raise ValueError("generator, discriminator and loss configs must all be EG3D's or all the pipeline's")
        if pipeline:
            self.generator.validate()
        shown = self.shown_resolution
        if shown != self.discriminator.img_resolution:
            raise ValueError(f"generator shows D {shown}px images but the discriminator expects "
                             f"{self.discriminator.img_resolution}px")
        if self.optim.optimizer not in ("adam", "rmsprop"):
            raise ValueError(f"optim.optimizer must be adam or rmsprop, not {self.optim.optimizer!r}")
        if self.amp not in ("off", "bf16", "fp16"):
            raise ValueError(f"--amp must be off, bf16 or fp16, not {self.amp!r}")
        if self.tick_kimg <= 0 or self.snap < 1:
            raise ValueError("--tick must be > 0 and --snap >= 1")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        return dataclass_from_dict(cls, data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


TRAIN_PRESETS = ("ffhq512", "shapenet128", "tiny", "eg3d", "eg3d-tiny") + tuple(
    name for method in PIPELINE_METHODS for name in (method, f"{method}-tiny"))


def train_preset(name: str) -> TrainConfig:
    """Named recipes.

    * ``ffhq512``: EG3D's FFHQ-512 recipe (batch 32, gamma 1, neural resolution 64, GPC 0.5).
    * ``shapenet128``: EG3D's ShapeNet recipe (gamma 0.3, white background, ray box 0.1-2.6).
    * ``tiny``: a small generator and discriminator at 128px that learns the synthetic data on CPU;
      the schedules are shortened in proportion to the short run.
    * ``eg3d`` / ``eg3d-tiny``: the same as ``ffhq512`` / ``tiny``.
    * ``pigan``, ``graf``, ``giraffe``, ``volumegan``, ``stylenerf``, ``stylesdf``, ``gram``,
      ``epigraf``: the pipeline methods' recipes (:func:`pipeline_train_preset`), and their
      ``-tiny`` CPU variants.
    """
    if name in ("eg3d", "eg3d-tiny"):
        config = train_preset("ffhq512" if name == "eg3d" else "tiny")
        config.cfg = name
        return config
    if name.removesuffix("-tiny") in PIPELINE_METHODS:
        return pipeline_train_preset(name)
    if name == "ffhq512":
        generator = eg3d_preset("ffhq512")
        return TrainConfig(cfg=name, generator=generator, discriminator=discriminator_preset("ffhq512"),
                           loss=LossConfig(r1_gamma=1.0, neural_rendering_resolution_initial=64),
                           batch=32, kimg=25000, tick_kimg=4, snap=50, metric_images=10000)
    if name == "shapenet128":
        generator = eg3d_preset("shapenet128")
        return TrainConfig(cfg=name, generator=generator, discriminator=discriminator_preset("shapenet128"),
                           loss=LossConfig(r1_gamma=0.3, neural_rendering_resolution_initial=64),
                           batch=32, kimg=25000, tick_kimg=4, snap=50, metric_images=10000,
                           grid_yaws=(-2.0, -1.0, 0.0, 1.0, 2.0))
    if name == "tiny":
        generator = eg3d_preset("tiny")
        # Short CPU runs: fade the blur and the pose swapping over a few kimg instead of hundreds.
        return TrainConfig(cfg=name, generator=generator, discriminator=discriminator_preset("tiny"),
                           loss=LossConfig(r1_gamma=1.0, blur_init_sigma=10.0, blur_fade_kimg=4.0,
                                           neural_rendering_resolution_initial=generator.neural_rendering_resolution,
                                           gpc_reg_fade_kimg=20.0),
                           batch=8, kimg=100, tick_kimg=0.5, snap=2, metric_images=256, workers=1,
                           grid_seeds=4, truncation_psi=0.7)
    raise ValueError(f"unknown training preset {name!r}; expected one of {', '.join(TRAIN_PRESETS)}")


def _ema_kimg(beta_per_step: float, batch: int) -> float:
    """Half-life in kimg of a per-step EMA decay (pi-GAN/GRAM's 0.999 at their batch)."""
    import math

    return math.log(0.5) / math.log(beta_per_step) * batch / 1000


def pipeline_train_preset(name: str) -> TrainConfig:
    """Training recipes of the pipeline methods (methods.md section 3; original repos, not Carver,
    where they differ). ``<method>-tiny`` keeps the recipe's losses and optimiser with a CPU-sized
    generator and discriminator, batch 4, and schedules shortened to a few kimg."""
    tiny = name.endswith("-tiny")
    method = name.removesuffix("-tiny")
    G = pipeline_preset(name)
    D = PipelineDiscriminatorConfig
    pose_head = dict(kind="coordconv", pose_dim=2, mbstd_group_size=None)
    if method == "pigan":  # [P] CelebA: R1 0.2, pose 15, top-k, Adam 6e-5/2e-4 (0, 0.9), clip 10, batch 56
        disc = D(img_resolution=G.img_resolution, **pose_head)
        loss = PipelineLossConfig(r1_gamma=0.2, pose_weight=15.0, topk_start=1.0, topk_min=0.6, topk_decay=0.99,
                                  topk_interval_kimg=2000 * 56 / 1000, progressive_start=32,
                                  progressive_level_kimg=10000 * 56 / 1000, progressive_fade_kimg=10000 * 56 / 1000)
        optim = OptimConfig(g_lr=6e-5, d_lr=2e-4, betas=(0.0, 0.9), g_reg_interval=0, d_reg_interval=1, grad_clip=10.0)
        config = TrainConfig(batch=56, ema_kimg=_ema_kimg(0.999, 56), ema_rampup=None)
    elif method == "gram":  # [G]: R1 1 each step, pose 15 fake and real, Adam 2e-5/2e-4 (0, 0.9), clip 1
        disc = D(img_resolution=G.img_resolution, **pose_head)
        loss = PipelineLossConfig(r1_gamma=1.0, pose_weight=15.0, real_pose_weight=15.0)
        optim = OptimConfig(g_lr=2e-5, d_lr=2e-4, betas=(0.0, 0.9), g_reg_interval=0, d_reg_interval=1, grad_clip=1.0)
        config = TrainConfig(batch=32, ema_kimg=_ema_kimg(0.999, 32), ema_rampup=None)
    elif method == "stylesdf":  # [S] stage 1: R1 10, view 15 (smooth L1), eikonal 0.1, minimal surface 0.05
        G = stylesdf_stage(G, 1)
        disc = D(img_resolution=G.img_resolution, **pose_head)
        loss = PipelineLossConfig(r1_gamma=10.0, pose_weight=15.0, pose_loss="smooth_l1", eikonal_weight=0.1,
                                  minimal_surface_weight=0.05, stage=1, sdf_sphere_init_steps=1000)
        optim = OptimConfig(g_lr=2e-5, d_lr=2e-4, betas=(0.0, 0.9), g_reg_interval=0, d_reg_interval=1)
        config = TrainConfig(batch=24, ema_kimg=_ema_kimg(0.5 ** (32 / 10000), 24), ema_rampup=None)
    elif method == "volumegan":  # [V]: R1 10 / 16, lr 0.002, progressive 32 -> 256, 750k + 750k per level
        disc = D(kind="resnet", img_resolution=G.img_resolution, progressive=True, min_resolution=32)
        loss = PipelineLossConfig(r1_gamma=10.0, style_mixing_prob=0.9, pl_weight=2.0, progressive_start=32,
                                  progressive_generator=True,
                                  progressive_level_kimg=1500.0, progressive_fade_kimg=750.0)
        optim = OptimConfig(g_lr=0.002, d_lr=0.002)
        config = TrainConfig(batch=64, ema_kimg=20.0)
    elif method == "stylenerf":  # [SN] paper256: R1 0.5, lr 0.0025, mixing 0.9, batch 64, EMA 20 kimg
        disc = D(kind="resnet", img_resolution=G.img_resolution, progressive=True, min_resolution=32)
        loss = PipelineLossConfig(r1_gamma=0.5, style_mixing_prob=0.9, pl_weight=2.0, nerf_path_weight=2.0,
                                  progressive_start=32,
                                  progressive_generator=True,
                                  progressive_level_kimg=1500.0, progressive_fade_kimg=500.0)
        optim = OptimConfig(g_lr=0.0025, d_lr=0.0025)
        config = TrainConfig(batch=64, ema_kimg=20.0)
    elif method == "graf":  # [GF]: DCGAN D on 32 px patches, R1 10 on reals, RMSprop 5e-4/1e-4, batch 8
        disc = D(kind="dcgan", img_resolution=G.points.patch_size, ndf=64)
        loss = PipelineLossConfig(r1_gamma=10.0)
        optim = OptimConfig(g_lr=5e-4, d_lr=1e-4, optimizer="rmsprop", g_reg_interval=0, d_reg_interval=1)
        config = TrainConfig(batch=8, ema_kimg=_ema_kimg(0.999, 8), ema_rampup=None)
    elif method == "giraffe":  # [GI]: DCGAN D, R1 10, RMSprop 2.5e-4/1e-4, batch 32
        disc = D(kind="dcgan", img_resolution=G.img_resolution, ndf=64)
        loss = PipelineLossConfig(r1_gamma=10.0)
        optim = OptimConfig(g_lr=2.5e-4, d_lr=1e-4, optimizer="rmsprop", g_reg_interval=0, d_reg_interval=1)
        config = TrainConfig(batch=32, ema_kimg=_ema_kimg(0.999, 32), ema_rampup=None)
    elif method == "epigraf":  # [EP]: patch D (hyper-modulated), R1 auto 0.0002 res^2 / batch, blur 10 over 200 kimg
        disc = D(kind="patch", img_resolution=G.points.patch_size, channel_base=16384)
        loss = PipelineLossConfig(r1_gamma=0.0002 * G.img_resolution**2 / 64, blur_init_sigma=10.0, blur_fade_kimg=200.0)
        optim = OptimConfig(g_lr=0.0025, d_lr=0.002)
        config = TrainConfig(batch=64, kimg=50000.0)
    elif method == "eg3d":  # ablations of EG3D (--cfg eg3d --embedder volume): its recipe, single-image pose-conditioned D
        disc = D(kind="resnet", img_resolution=G.img_resolution, c_dim=25)
        loss = PipelineLossConfig(r1_gamma=1.0, blur_init_sigma=10.0, blur_fade_kimg=200.0, density_reg=0.25)
        optim = OptimConfig()
        config = TrainConfig(batch=32)
    else:
        raise ValueError(f"unknown pipeline method {method!r}")
    config.cfg, config.generator, config.discriminator, config.loss, config.optim = name, G, disc, loss, optim
    config.metric_images = 10000
    if tiny:
        # CPU size: narrow D, batch 4, and every schedule over a few kimg.
        disc.channel_base, disc.channel_max, disc.ndf, disc.patch_fourier_dim, disc.patch_mapping_dim = 256, 16, 8, 16, 16
        disc.min_resolution = min(disc.min_resolution, 8)
        if loss.progressive_start:
            loss.progressive_start, loss.progressive_level_kimg, loss.progressive_fade_kimg = 16, 0.2, 0.1
        if loss.topk_interval_kimg:
            loss.topk_interval_kimg = 0.1
        loss.blur_fade_kimg = min(loss.blur_fade_kimg, 1.0)
        loss.geometry_points = 16
        loss.sdf_sphere_init_steps = min(loss.sdf_sphere_init_steps, 400)
        config.batch, config.kimg, config.tick_kimg, config.snap = 4, 4.0, 0.2, 2
        config.metric_images, config.workers, config.grid_seeds = 64, 1, 2
        config.ema_kimg = min(config.ema_kimg or 1.0, 1.0)
    config.grid_yaws = (-0.4, -0.2, 0.0, 0.2, 0.4)
    return config


def stylesdf_stage(config: PipelineConfig, stage: int) -> PipelineConfig:
    """StyleSDF's stages: 1 trains the SDF volume renderer alone (RGB at the neural resolution, no
    upsampler); 2 adds the StyleGAN2 upsampler to the full resolution with the mapping, embedder,
    decoder and renderer frozen (our stage 2 shares stage 1's mapping, so it is frozen too)."""
    config = PipelineConfig.from_dict(config.to_dict())
    full = pipeline_preset(config.preset)
    if stage == 1:
        config.upsampler.kind = "none"
        config.img_resolution = config.neural_rendering_resolution = full.neural_rendering_resolution
        config.frozen = ()
    elif stage == 2:
        config.upsampler = full.upsampler
        config.img_resolution, config.neural_rendering_resolution = full.img_resolution, full.neural_rendering_resolution
        config.frozen = ("mapping_network", "embedder", "decoder", "renderer")
    else:
        raise ValueError(f"StyleSDF has stages 1 and 2, not {stage}")
    return config


def stylesdf_stage2_train_config(stage1: TrainConfig) -> TrainConfig:
    """The stage-2 recipe after a stage-1 config: full pipeline, StyleGAN2 D, R1 10 every 16,
    lr 0.002 with lazy-regularisation ratios, mixing 0.9 ([S] train_full_pipeline.py)."""
    config = TrainConfig.from_dict(stage1.to_dict())
    config.generator = stylesdf_stage(stage1.generator, 2)
    res = config.generator.img_resolution
    cpu_sized = res <= 64  # a -tiny preset (32 px); StyleSDF's own stage 2 makes 1024 px images
    config.discriminator = PipelineDiscriminatorConfig(
        kind="resnet", img_resolution=res,
        channel_base=stage1.discriminator.channel_base * 2 if cpu_sized else 32768,
        channel_max=stage1.discriminator.channel_max if cpu_sized else 512)
    config.loss = PipelineLossConfig(r1_gamma=10.0, style_mixing_prob=0.9, pl_weight=2.0, stage=2)
    config.optim = OptimConfig(g_lr=0.002, d_lr=0.002)
    config.batch = stage1.batch if cpu_sized else 32  # [S]: 8 per GPU on 4 GPUs
    config.ema_kimg, config.ema_rampup = _ema_kimg(0.5 ** (32 / 10000), config.batch), None
    return config


def apply_overrides(config: TrainConfig, overrides: list[str]) -> TrainConfig:
    """Apply ``dotted.key=value`` overrides (value parsed as JSON, else taken as a string).

    Example: ``loss.r1_gamma=0.3`` or ``generator.rendering.depth_resolution=24``.
    """
    data = config.to_dict()
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not KEY=VALUE")
        key, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node, dict) or part not in node:
                raise ValueError(f"override {key!r}: no config field {part!r}")
            node = node[part]
        if not isinstance(node, dict) or parts[-1] not in node:
            raise ValueError(f"override {key!r}: no config field {parts[-1]!r}")
        node[parts[-1]] = value
    return TrainConfig.from_dict(data)


def apply_components(config: TrainConfig, swaps: dict[str, str | None]) -> TrainConfig:
    """Ablations from the command line (``--embedder volume --decoder siren``): replace pipeline
    components (``models.pipeline_config.with_component``). An EG3D preset first becomes EG3D's
    recipe as a pipeline (its exact network has no swappable parts)."""
    swaps = {k: v for k, v in swaps.items() if v}
    if not swaps:
        return config
    if not isinstance(config.generator, PipelineConfig):
        recipes = {"tiny": "eg3d-tiny", "eg3d-tiny": "eg3d-tiny", "ffhq512": "eg3d", "eg3d": "eg3d"}
        if config.cfg not in recipes:
            raise ValueError(f"component swaps start from EG3D's FFHQ recipe (eg3d, eg3d-tiny), not {config.cfg!r}")
        config = pipeline_train_preset(recipes[config.cfg])
    generator = config.generator
    for component, kind in swaps.items():
        generator = with_component(generator, component, kind)
    config.generator = generator
    config.discriminator.img_resolution = config.shown_resolution
    config.cfg = config.cfg + "".join(f"+{component}={kind}" for component, kind in swaps.items())
    return config


def with_stage(config: TrainConfig, stage: int) -> TrainConfig:
    """A StyleSDF config at ``stage`` (1: volume renderer; 2: full pipeline, renderer frozen)."""
    if not isinstance(config.generator, PipelineConfig) or config.generator.decoder.kind != "sdf_siren":
        raise ValueError("--stage applies to StyleSDF-style (SDF) presets only")
    if stage == 1:
        return config
    if stage == 2:
        stage2 = stylesdf_stage2_train_config(config)
        stage2.cfg = config.cfg + "-stage2"
        return stage2
    raise ValueError(f"--stage must be 1 or 2, not {stage}")
