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


@dataclass
class TrainConfig:
    """Everything that defines a training run."""

    cfg: str = "tiny"
    """Preset the run started from."""
    data: str = ""
    """Training data: an EG3D zip or folder with dataset.json."""
    outdir: str = "runs"
    """Folder holding the numbered run directories."""
    generator: EG3DConfig = field(default_factory=EG3DConfig)
    """Generator architecture."""
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    """Discriminator architecture."""
    loss: LossConfig = field(default_factory=LossConfig)
    """Loss and schedules."""
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
        if isinstance(self.generator, dict):
            self.generator = EG3DConfig.from_dict(self.generator)
        if isinstance(self.discriminator, dict):
            self.discriminator = DiscriminatorConfig.from_dict(self.discriminator)
        if isinstance(self.loss, dict):
            self.loss = _dataclass_from_dict(LossConfig, self.loss)
        if isinstance(self.optim, dict):
            self.optim = _dataclass_from_dict(OptimConfig, self.optim)
        self.optim.betas = tuple(self.optim.betas)
        self.grid_yaws = tuple(self.grid_yaws)

    @property
    def batch_per_gpu(self) -> int:
        """Images per forward pass on one rank."""
        return self.batch_gpu or self.batch // self.gpus

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
        if self.generator.img_resolution != self.discriminator.img_resolution:
            raise ValueError(f"generator makes {self.generator.img_resolution}px images but the discriminator expects "
                             f"{self.discriminator.img_resolution}px")
        if self.amp not in ("off", "bf16", "fp16"):
            raise ValueError(f"--amp must be off, bf16 or fp16, not {self.amp!r}")
        if self.tick_kimg <= 0 or self.snap < 1:
            raise ValueError("--tick must be > 0 and --snap >= 1")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        return _dataclass_from_dict(cls, data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _dataclass_from_dict(cls, data: dict[str, Any]):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {', '.join(unknown)}")
    return cls(**data)


TRAIN_PRESETS = ("ffhq512", "shapenet128", "tiny")


def train_preset(name: str) -> TrainConfig:
    """Named recipes.

    * ``ffhq512``: EG3D's FFHQ-512 recipe (batch 32, gamma 1, neural resolution 64, GPC 0.5).
    * ``shapenet128``: EG3D's ShapeNet recipe (gamma 0.3, white background, ray box 0.1-2.6).
    * ``tiny``: a small generator and discriminator at 128px that learns the synthetic data on CPU;
      the schedules are shortened in proportion to the short run.
    """
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
