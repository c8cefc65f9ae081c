"""Typed training configuration: one dataclass per concern, named presets, and CLI overrides.

A resolved :class:`TrainConfig` is written as JSON beside every run (``training_options.json``)
and inside every resumable training state, so a run can always be rebuilt exactly.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from models.build import pipeline_config_of
from models.discriminator import DiscriminatorConfig
from models.eg3d import EG3DConfig
from models.pipeline_config import PipelineConfig
from models.pipeline_discriminators import DISCRIMINATORS, discriminator_config_from_dict
from models.registry import ComponentConfig
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
    eikonal_weight: float = 0.0
    """The eikonal term (|grad d| - 1)^2 of an SDF head (``eg3d-sdf-tiny``; EG3D itself has none)."""
    minimal_surface_weight: float = 0.0
    """The minimal-surface term exp(-100 |d|) of an SDF head."""
    geometry_points: int = 64
    """Rays per identity whose samples carry the eikonal and minimal-surface terms."""
    sdf_sphere_init_steps: int = 0
    """Steps fitting an SDF head to a sphere of radius (far - near) / 4 before training."""


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
    generator: PipelineConfig = field(default_factory=lambda: pipeline_config_of(EG3DConfig()))
    """Generator architecture (an ``EG3DConfig`` given here becomes its pipeline preset)."""
    discriminator: ComponentConfig = field(default_factory=DiscriminatorConfig)
    """Discriminator architecture: a registered kind (``models.pipeline_discriminators.DISCRIMINATORS``),
    EG3D's dual discriminator or a pipeline one."""
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
        # Every generator is a pipeline config; runs saved before EG3D joined the pipeline hold EG3D's
        # own description (method 'eg3d'), read and converted (models.methods.eg3d.from_eg3d).
        if isinstance(self.generator, dict):
            described = {"pipeline": PipelineConfig, "eg3d": EG3DConfig}.get(self.generator.get("method", "eg3d"))
            if described is None:
                raise ValueError(f"unknown generator method {self.generator.get('method')!r}")
            self.generator = described.from_dict(self.generator)
        self.generator = pipeline_config_of(self.generator)
        # Discriminator configs name their registered kind (older runs' forms are read too).
        self.discriminator = discriminator_config_from_dict(self.discriminator)
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
        return g.points.patch_size if g.patch_sampler.crops else g.img_resolution

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
        d, D = self.discriminator, DISCRIMINATORS.cls_of(self.discriminator)
        pipeline = not D.dual  # EG3D's recipe: the dual D and EG3D's loss; every other: the pipeline loss
        if D.dual != (type(self.loss) is LossConfig):
            raise ValueError("EG3D's dual discriminator trains with EG3D's loss config, every other with the pipeline's")
        d.validate()
        self.generator.validate()
        if D.label_conditioned and d.c_dim not in (0, self.generator.c_dim):
            raise ValueError(f"the discriminator reads {d.c_dim}-d labels but the generator's cameras are "
                             f"{self.generator.c_dim}-d (discriminator.c_dim must be 0 or {self.generator.c_dim})")
        if pipeline:
            loss = self.loss
            if (loss.pose_weight > 0 or loss.real_pose_weight > 0) and not D.has_pose_head(d):
                raise ValueError(f"the pose loss needs a discriminator with a pose head (pose_dim > 0); "
                                 f"{D.kind!r} has {'pose_dim 0' if D.pose_head else 'none'}")
            if loss.progressive_start > 0 and loss.progressive_level_kimg > 0:
                if not D.is_progressive(d):
                    raise ValueError(f"loss.progressive_start grows D's input, but this {D.kind!r} discriminator "
                                     "is not progressive")
                if loss.progressive_start < d.min_resolution:
                    raise ValueError(f"loss.progressive_start {loss.progressive_start} is below the discriminator's "
                                     f"min_resolution {d.min_resolution}")
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
        data = dataclasses.asdict(self)
        # Each part writes itself (registered components record their kind, which asdict cannot see).
        data["generator"] = self.generator.to_dict()
        data["discriminator"] = self.discriminator.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return dataclass_from_dict(cls, data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


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
