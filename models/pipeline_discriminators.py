"""Discriminators of the non-EG3D 3D-aware GAN presets (methods.md sections 3.2-3.9).

Four registered kinds (``DISCRIMINATORS``, ``models.discriminator_registry``; build one with
``DISCRIMINATORS.build(config)``), each a class with its own ``Config`` and its facts:

* ``'resnet'`` (:class:`ResNetDiscriminator`): StyleGAN2 residual discriminator on one image,
  minibatch std, optional projection conditioning on a label c (VolumeGAN, StyleNeRF, StyleSDF
  stage 2). Optionally progressive; label-conditioned.
* ``'coordconv'`` (:class:`CoordConvDiscriminator`): residual blocks of CoordConv 3x3 convolutions
  with LeakyReLU 0.2 whose head also predicts the latent code and the pose (pi-GAN, GRAM, StyleSDF
  stage 1). Always progressive; pose head.
* ``'patch'`` (:class:`PatchDiscriminator`): the StyleGAN2 residual discriminator on patches, each
  block's down-sampling conv hyper-modulated by the patch's (scale, offset) (EpiGRAF). As 'resnet',
  and reads the patch parameters.
* ``'dcgan'`` (:class:`DCGANDiscriminator`): strided 4x4 convolutions with spectral and instance
  norm (GRAF, GIRAFFE). Fixed resolution.

EG3D's dual discriminator is registered too (``'eg3d_dual'``, ``models.discriminator``), so this
module's :data:`DISCRIMINATORS` holds every kind; :func:`discriminator_config_from_dict` reads any
saved discriminator config, including those written before the kinds were registered.

Every module has the same call::

    forward(image [N, C, H, W], c [N, c_dim] | None = None, patch [N, 3] | None = None,
            alpha: float = 1.0) -> DiscriminatorOutput(logits [N, 1], pose [N, P] | None, latent [N, L] | None)

Outputs are float32. ``c`` is ignored by kinds that are not label-conditioned or have ``c_dim == 0``,
and ``patch`` by kinds that do not read patches, so one training loop can pass both to any kind.

Progressive input (``progressive=True`` for 'resnet'/'patch', always for 'coordconv'): H = W may be
any power of two in [min_resolution, img_resolution]. The image enters through the fromRGB layer of
its resolution and the blocks below it. For ``alpha < 1`` the output of the first block is blended
with the fromRGB of :func:`fade_downsample` (image) as ``alpha * block + (1 - alpha) * fromRGB``
(ProGAN fade-in), so ``alpha = 0`` equals a call with the downsampled image at H / 2. At
H = min_resolution there is nothing to fade from and alpha has no effect.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from models.discriminator import (
    Conv2dLayer,
    DiscriminatorBlock,
    DiscriminatorConfig,
    DiscriminatorEpilogue,
    MinibatchStdLayer,
)
from models.discriminator_registry import DISCRIMINATORS, DiscriminatorFacts
from models.registry import ComponentConfig
from models.stylegan2 import FullyConnectedLayer, MappingNetwork
from ops.patch_sampling import PatchParams
from ops.stylegan2 import ACTIVATIONS, DEFAULT_RESAMPLE_FILTER, bias_act, modulated_conv2d, setup_filter

# --- configuration ----------------------------------------------------------------------------

@dataclass
class PipelineDiscriminatorConfig(ComponentConfig):
    """Fields every pipeline discriminator kind has (each kind's ``Config`` extends this)."""

    img_resolution: int = 256
    """Largest input resolution, a power of two >= 8 (the patch size for 'patch')."""
    img_channels: int = 3
    """Channels of the input image."""

    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent setting (the kind's class checks its fields)."""
        DISCRIMINATORS.cls_of(self).check_config(self)

    @property
    def is_progressive(self) -> bool:
        """Whether the built module accepts lower-resolution inputs (see ``DiscriminatorFacts``)."""
        return DISCRIMINATORS.cls_of(self).is_progressive(self)


class DiscriminatorOutput(NamedTuple):
    """What every pipeline discriminator returns (float32)."""

    logits: torch.Tensor
    """[N, 1] real/fake logits."""
    pose: torch.Tensor | None
    """[N, pose_dim] predicted pose, or None without a pose head."""
    latent: torch.Tensor | None
    """[N, latent_dim] predicted latent code, or None without a latent head."""


# --- shared helpers ---------------------------------------------------------------------------

def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def fade_downsample(image: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, H/2, W/2] by 2x2 box filtering: the downsampling of the fade-in.

    Real images shown to a progressive discriminator at H / 2 should be made the same way so that
    ``alpha = 0`` at H and ``alpha = 1`` at H / 2 see identical inputs.
    """
    return F.avg_pool2d(image, 2)


class _PipelineDiscriminator(DiscriminatorFacts, nn.Module):
    """The call shared by all kinds: checks image and alpha, casts to float32, runs :meth:`_discriminate`.

    ``input_resolutions`` lists the accepted input sides, largest first (only img_resolution
    unless the config is progressive).
    """

    Config = PipelineDiscriminatorConfig

    def __init__(self, config: PipelineDiscriminatorConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.img_resolution = config.img_resolution
        top = int(math.log2(config.img_resolution))
        low = int(math.log2(config.min_resolution)) if self.is_progressive(config) else top
        self.input_resolutions = [2**i for i in range(top, low - 1, -1)]

    @classmethod
    def check_config(cls, config: PipelineDiscriminatorConfig) -> None:
        """Raise ValueError naming the first inconsistent setting of this kind's ``config``; the
        fields that go with a fact are checked where the class has the fact."""
        if not _is_pow2(config.img_resolution) or config.img_resolution < 8:
            raise ValueError(f"img_resolution must be a power of two >= 8, got {config.img_resolution}")
        if cls.is_progressive(config):
            if not _is_pow2(config.min_resolution) or not 8 <= config.min_resolution <= config.img_resolution:
                raise ValueError(f"min_resolution must be a power of two in [8, img_resolution="
                                 f"{config.img_resolution}], got {config.min_resolution}")
        if config.img_channels < 1:
            raise ValueError(f"img_channels must be positive, got {config.img_channels}")
        names = (("c_dim",) if cls.label_conditioned else ()) + (("pose_dim", "latent_dim") if cls.pose_head else ())
        for name in names:
            if getattr(config, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(config, name)}")
        if cls.reads_patch:
            if config.patch_fourier_dim < 6 or config.patch_fourier_dim % 2:
                raise ValueError(f"patch_fourier_dim must be even and >= 6, got {config.patch_fourier_dim}")
            if not config.patch_fourier_scale > 0:
                raise ValueError(f"patch_fourier_scale must be positive, got {config.patch_fourier_scale}")
            if config.patch_mapping_dim < 1:
                raise ValueError(f"patch_mapping_dim must be positive, got {config.patch_mapping_dim}")

    def forward(
        self,
        image: torch.Tensor,
        c: torch.Tensor | None = None,
        patch: torch.Tensor | PatchParams | None = None,
        alpha: float = 1.0,
    ) -> DiscriminatorOutput:
        """Score a batch of images.

        Args:
            image: [N, img_channels, R, R]; R = img_resolution, or for a progressive discriminator
                any power of two in [min_resolution, img_resolution].
            c: [N, c_dim] label, required when c_dim > 0 ('resnet', 'patch'), otherwise ignored.
            patch: 'patch' only (ignored by the others): [N, 3] rows (scale, offset_x, offset_y) or
                a PatchParams; None is the full image (1, 0, 0).
            alpha: fade-in weight in [0, 1] of the block at R against the fromRGB at R / 2.

        Returns:
            DiscriminatorOutput(logits [N, 1], pose [N, pose_dim] | None, latent [N, latent_dim] | None), float32.
        """
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"fade-in alpha must lie in [0, 1], got {alpha}")
        res = self._input_resolution(image)
        return self._discriminate(image.to(torch.float32), res, c, patch, alpha)

    def _discriminate(self, image: torch.Tensor, res: int, c: torch.Tensor | None,
                      patch: torch.Tensor | PatchParams | None, alpha: float) -> DiscriminatorOutput:
        raise NotImplementedError

    def _input_resolution(self, image: torch.Tensor) -> int:
        channels = self.config.img_channels
        if image.ndim != 4 or image.shape[1] != channels or image.shape[2] != image.shape[3]:
            raise ValueError(f"discriminator input must be [N, {channels}, R, R], got {list(image.shape)}")
        res = image.shape[-1]
        if res == self.img_resolution:
            return res
        if not self.is_progressive(self.config):
            raise ValueError(f"this non-progressive discriminator takes {self.img_resolution}x{self.img_resolution} "
                             f"inputs, got {res}x{res}")
        if not _is_pow2(res):
            raise ValueError(f"input resolution {res} is not a power of two")
        if res < self.input_resolutions[-1]:
            raise ValueError(f"input resolution {res} is below min_resolution {self.input_resolutions[-1]}")
        if res > self.img_resolution:
            raise ValueError(f"input resolution {res} is above img_resolution {self.img_resolution}")
        return res


class _GrowingTrunk(_PipelineDiscriminator):
    """fromRGB layers per input resolution and blocks that halve the resolution down to 4x4.

    Subclasses fill ``fromrgb[str(r)]`` ([N, C_img, r, r] -> [N, ch(r), r, r]) for r in
    ``input_resolutions`` and ``blocks[str(r)]`` ([N, ch(r), r, r] -> [N, ch(r/2), r/2, r/2]) for r
    in ``block_resolutions``, and define :meth:`_run_block`; :meth:`trunk` does the ProGAN fade.
    Its config is shared by 'resnet', 'patch' and 'coordconv'.
    """

    supports_progressive = True

    @dataclass
    class Config(PipelineDiscriminatorConfig):
        channel_base: int = 32768
        """Feature maps: channels at resolution r are min(channel_base // r, channel_max)."""
        channel_max: int = 512
        """Channel cap."""
        mbstd_group_size: int | None = 4
        """Minibatch-std group size (None: whole batch, 0: no mbstd layer)."""
        min_resolution: int = 8
        """Smallest accepted input resolution when progressive (a power of two >= 8)."""

        def channels(self, res: int) -> int:
            """Feature channels at resolution ``res``."""
            return min(self.channel_base // res, self.channel_max)

    def __init__(self, config: Config):
        super().__init__(config)
        self.block_resolutions = [2**i for i in range(int(math.log2(config.img_resolution)), 2, -1)]
        self.fromrgb = nn.ModuleDict()
        self.blocks = nn.ModuleDict()

    @classmethod
    def check_config(cls, config: Config) -> None:
        super().check_config(config)
        for name in ("channel_base", "channel_max"):
            if getattr(config, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(config, name)}")
        if config.channels(config.img_resolution) < 1:
            raise ValueError(f"channel_base {config.channel_base} leaves no channels at resolution {config.img_resolution}")
        if config.mbstd_group_size is not None and config.mbstd_group_size < 0:
            raise ValueError(f"mbstd_group_size must be None or >= 0, got {config.mbstd_group_size}")

    @staticmethod
    def tiny(config: Config) -> Config:
        """CPU size: 16 channels at most, progressive growth from 8 px."""
        return config.replace(channel_base=256, channel_max=16, min_resolution=min(config.min_resolution, 8))

    def _run_block(self, res: int, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def trunk(self, image: torch.Tensor, res: int, alpha: float, context: torch.Tensor | None = None) -> torch.Tensor:
        """image [N, C, res, res] -> features [N, ch(4), 4, 4], with the fade-in for alpha < 1."""
        x = self._run_block(res, self.fromrgb[str(res)](image), context)
        if alpha < 1 and str(res // 2) in self.fromrgb:
            faded = self.fromrgb[str(res // 2)](fade_downsample(image))
            x = alpha * x + (1 - alpha) * faded
        for r in self.block_resolutions:
            if r < res:
                x = self._run_block(r, x, context)
        return x


# --- 'resnet' and 'patch': StyleGAN2 residual discriminators ----------------------------------

@DISCRIMINATORS.register("resnet")
class ResNetDiscriminator(_GrowingTrunk):
    """StyleGAN2 residual discriminator on one image (VolumeGAN, StyleNeRF, StyleSDF stage 2).

    image [N, img_channels, R, R] (R = img_resolution, or lower when progressive) and
    c [N, c_dim] -> logits [N, 1]. With c_dim > 0 the logit is a projection on the mapped label,
    as in EG3D's ``DualDiscriminator``; blocks and head are that discriminator's.
    """

    label_conditioned = True

    @dataclass
    class Config(_GrowingTrunk.Config):
        c_dim: int = 0
        """Dimensionality of the label c for projection conditioning (0 = unconditional)."""
        progressive: bool = False
        """Accept power-of-two inputs in [min_resolution, img_resolution] with fade-in alpha."""

    def __init__(self, config: Config):
        super().__init__(config)
        ch = config.channels
        for res in self.input_resolutions:
            self.fromrgb[str(res)] = Conv2dLayer(config.img_channels, ch(res), kernel_size=1, activation="lrelu")
        for res in self.block_resolutions:
            self.blocks[str(res)] = self._make_block(res, ch(res), ch(res // 2))
        self.cmap_dim = ch(4) if config.c_dim > 0 else 0
        if config.c_dim > 0:
            self.mapping = MappingNetwork(z_dim=0, c_dim=config.c_dim, w_dim=self.cmap_dim, num_ws=None, w_avg_beta=None)
        mbstd = config.mbstd_group_size
        self.epilogue = DiscriminatorEpilogue(ch(4), cmap_dim=self.cmap_dim, resolution=4,
                                              img_channels=config.img_channels,
                                              mbstd_group_size=mbstd, mbstd_num_channels=0 if mbstd == 0 else 1)

    def _make_block(self, res: int, in_channels: int, out_channels: int) -> nn.Module:
        # in_channels == tmp_channels: the block has no fromrgb of its own; ours sit in self.fromrgb.
        return DiscriminatorBlock(in_channels, in_channels, out_channels, resolution=res,
                                  img_channels=self.config.img_channels, first_layer_idx=0)

    def _run_block(self, res: int, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        return self.blocks[str(res)](x, None)[0]

    def _block_context(self, image: torch.Tensor, patch: Any) -> torch.Tensor | None:
        return None

    def _discriminate(self, image: torch.Tensor, res: int, c: torch.Tensor | None,
                      patch: torch.Tensor | PatchParams | None, alpha: float) -> DiscriminatorOutput:
        x = self.trunk(image, res, alpha, self._block_context(image, patch))
        cmap = None
        if self.cmap_dim > 0:
            if c is None or c.shape != (image.shape[0], self.config.c_dim):
                got = None if c is None else list(c.shape)
                raise ValueError(f"c must be [{image.shape[0]}, {self.config.c_dim}], got {got}")
            cmap = self.mapping(None, c)
        return DiscriminatorOutput(self.epilogue(x, None, cmap), None, None)

    def extra_repr(self) -> str:
        return (f"img_resolution={self.img_resolution}, input_resolutions={self.input_resolutions}, "
                f"c_dim={self.config.c_dim}")


class _HyperModulatedConv(nn.Module):
    """3x3 conv with 2x FIR downsampling whose weights are modulated per sample and demodulated.

    x [N, C_in, R, R], code [N, mapping_dim] -> [N, C_out, R/2, R/2] (bias, LeakyReLU, gain).
    """

    def __init__(self, in_channels: int, out_channels: int, mapping_dim: int):
        super().__init__()
        # Bias 1: an untrained affine leaves the convolution unmodulated.
        self.affine = FullyConnectedLayer(mapping_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 3, 3]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.register_buffer("resample_filter", setup_filter(DEFAULT_RESAMPLE_FILTER))

    def forward(self, x: torch.Tensor, code: torch.Tensor, gain: float = 1) -> torch.Tensor:
        x = modulated_conv2d(x, self.weight, self.affine(code), down=2, padding=1,
                             resample_filter=self.resample_filter, demodulate=True)
        return bias_act(x, self.bias, act="lrelu", gain=ACTIVATIONS["lrelu"].default_gain * gain)


class _HyperModulatedBlock(DiscriminatorBlock):
    """A residual discriminator block whose conv1 is hyper-modulated by the patch code (EpiGRAF).

    x [N, C_in, R, R], code [N, mapping_dim] -> [N, C_out, R/2, R/2].
    """

    def __init__(self, in_channels: int, out_channels: int, resolution: int, img_channels: int, mapping_dim: int):
        super().__init__(in_channels, in_channels, out_channels, resolution=resolution,
                         img_channels=img_channels, first_layer_idx=0)
        # Replaces the plain conv1 the base built; conv0 and skip stay the StyleGAN2 layers.
        self.conv1 = _HyperModulatedConv(in_channels, out_channels, mapping_dim)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        y = self.skip(x, gain=np.sqrt(0.5))
        x = self.conv1(self.conv0(x), code, gain=np.sqrt(0.5))
        return y + x


@DISCRIMINATORS.register("patch")
class PatchDiscriminator(ResNetDiscriminator):
    """EpiGRAF's patch discriminator: the residual discriminator with hyper-modulated blocks.

    image [N, C, R, R] (R = patch size = img_resolution), patch [N, 3] rows (scale, offset_x,
    offset_y) (or a :class:`ops.patch_sampling.PatchParams`; None = the full image (1, 0, 0))
    -> logits [N, 1]. The patch row is Fourier-encoded by the fixed buffer ``patch_freqs``
    [3, patch_fourier_dim / 2] as [sin, cos]((patch_fourier_scale * patch) @ patch_freqs), mapped
    to a [N, patch_mapping_dim] code by a 2-layer MLP, and each block's affine turns the code into
    per-input-channel scales of its conv1.
    """

    reads_patch = True

    @dataclass
    class Config(ResNetDiscriminator.Config):
        patch_fourier_dim: int = 256
        """Size of the Fourier features of (scale, offset_x, offset_y); even, >= 6."""
        patch_fourier_scale: float = 1000.0
        """Multiplier applied to the patch parameters before the Fourier features (EpiGRAF: 1000)."""
        patch_mapping_dim: int = 512
        """Size of the hyper-modulation vector that the mapping MLP produces."""

    def __init__(self, config: Config):
        super().__init__(config)
        self.register_buffer("patch_freqs", self._fourier_frequencies(config.patch_fourier_dim // 2,
                                                                       config.patch_fourier_scale))
        self.patch_mapping = MappingNetwork(z_dim=0, c_dim=config.patch_fourier_dim, w_dim=config.patch_mapping_dim,
                                            num_ws=None, num_layers=2, w_avg_beta=None)

    @staticmethod
    def tiny(config: Config) -> Config:
        """CPU size: the residual trunk's, and 16-d Fourier features and modulation codes."""
        return ResNetDiscriminator.tiny(config).replace(patch_fourier_dim=16, patch_mapping_dim=16)

    @staticmethod
    def _fourier_frequencies(count: int, scale: float) -> torch.Tensor:
        """[3, count]: frequency j belongs to parameter j % 3 (one nonzero per column).

        Each parameter's frequencies are log-spaced from pi / T to pi, with T the power of two >= the
        scaled parameter range: the lowest never wraps over [0, scale], the highest resolves steps
        of 1 / scale in the raw parameter.
        """
        period = 2.0 ** max(math.ceil(math.log2(scale)), 0)
        freqs = torch.zeros(3, count)
        per_param = math.ceil(count / 3)
        for j in range(count):
            rank = j // 3
            t = rank / (per_param - 1) if per_param > 1 else 0.0
            freqs[j % 3, j] = math.pi * period ** (t - 1)
        return freqs

    def _make_block(self, res: int, in_channels: int, out_channels: int) -> nn.Module:
        return _HyperModulatedBlock(in_channels, out_channels, res, self.config.img_channels,
                                    self.config.patch_mapping_dim)

    def _run_block(self, res: int, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        return self.blocks[str(res)](x, context)

    def _block_context(self, image: torch.Tensor, patch: torch.Tensor | PatchParams | None) -> torch.Tensor:
        n = image.shape[0]
        if patch is None:
            patch = torch.tensor([1.0, 0.0, 0.0], device=image.device).expand(n, 3)
        elif isinstance(patch, PatchParams):
            patch = patch.as_tensor()
        if patch.shape != (n, 3):
            raise ValueError(f"patch must be [{n}, 3] rows (scale, offset_x, offset_y), got {list(patch.shape)}")
        angles = (patch.to(torch.float32) * self.config.patch_fourier_scale) @ self.patch_freqs
        return self.patch_mapping(None, torch.cat([angles.sin(), angles.cos()], dim=1))


# --- 'coordconv': pi-GAN / GRAM / StyleSDF stage 1 --------------------------------------------

def _with_coords(x: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> [N, C + 2, H, W]: CoordConv's x (along W) and y (along H) channels in [-1, 1]."""
    n, _, h, w = x.shape
    ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype)
    xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    coords = torch.stack([grid_x, grid_y]).expand(n, 2, h, w)
    return torch.cat([x, coords], dim=1)


class _CoordConvResBlock(nn.Module):
    """[N, C_in, R, R] -> [N, C_out, R/2, R/2]: CoordConv 3x3, CoordConv 3x3 stride 2 (LeakyReLU 0.2
    after each), plus a 2x2-average-pooled 1x1 skip; the sum is scaled by sqrt(1/2)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv0 = nn.Conv2d(in_channels + 2, out_channels, 3, padding=1)
        self.conv1 = nn.Conv2d(out_channels + 2, out_channels, 3, stride=2, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.conv0(_with_coords(x)), 0.2)
        h = F.leaky_relu(self.conv1(_with_coords(h)), 0.2)
        return (h + self.skip(F.avg_pool2d(x, 2))) * math.sqrt(0.5)


@DISCRIMINATORS.register("coordconv")
class CoordConvDiscriminator(_GrowingTrunk):
    """pi-GAN / GRAM / StyleSDF-stage-1 discriminator: CoordConv residual blocks with extra heads.

    image [N, img_channels, r, r], r any power of two in [min_resolution, img_resolution] (with
    fade-in alpha) -> logits [N, 1], latent [N, latent_dim] (None if 0), pose [N, pose_dim] (None
    if 0). The head at 4x4 is an optional minibatch-std layer and one 4x4 conv giving
    1 + latent_dim + pose_dim values, split in that order (pi-GAN's order). Layers are plain torch
    convolutions (default init), as these methods train with plain Adam learning rates.
    """

    always_progressive = True
    pose_head = True

    @dataclass
    class Config(_GrowingTrunk.Config):
        pose_dim: int = 0
        """Number of predicted pose values (2 = yaw, pitch; 0 = no pose head)."""
        latent_dim: int = 0
        """Number of predicted latent values (pi-GAN: 256; 0 = no latent head)."""

    def __init__(self, config: Config):
        super().__init__(config)
        ch = config.channels
        for res in self.input_resolutions:
            self.fromrgb[str(res)] = nn.Sequential(nn.Conv2d(config.img_channels, ch(res), 1), nn.LeakyReLU(0.2))
        for res in self.block_resolutions:
            self.blocks[str(res)] = _CoordConvResBlock(ch(res), ch(res // 2))
        mbstd = config.mbstd_group_size
        self.mbstd = MinibatchStdLayer(mbstd) if mbstd != 0 else None
        self.out = nn.Conv2d(ch(4) + (self.mbstd is not None), 1 + config.latent_dim + config.pose_dim, 4)

    def _run_block(self, res: int, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        return self.blocks[str(res)](x)

    def _discriminate(self, image: torch.Tensor, res: int, c: torch.Tensor | None,
                      patch: torch.Tensor | PatchParams | None, alpha: float) -> DiscriminatorOutput:
        x = self.trunk(image, res, alpha)
        if self.mbstd is not None:
            x = self.mbstd(x)
        out = self.out(x).flatten(1)
        latent_dim, pose_dim = self.config.latent_dim, self.config.pose_dim
        logits, latent, pose = out.split([1, latent_dim, pose_dim], dim=1)
        return DiscriminatorOutput(logits, pose if pose_dim else None, latent if latent_dim else None)

    def extra_repr(self) -> str:
        return (f"input_resolutions={self.input_resolutions}, latent_dim={self.config.latent_dim}, "
                f"pose_dim={self.config.pose_dim}")


# --- 'dcgan': GRAF / GIRAFFE ------------------------------------------------------------------

@DISCRIMINATORS.register("dcgan")
class DCGANDiscriminator(_PipelineDiscriminator):
    """GRAF / GIRAFFE discriminator: spectrally normalised strided convolutions.

    image [N, img_channels, R, R] (R = img_resolution) -> logits [N, 1]. Each 4x4 stride-2 conv
    halves R down to 4 (widths ndf, 2 ndf, 4 ndf, ... capped at channel_max), followed by instance
    norm (not after the first) and LeakyReLU 0.2; a final 4x4 valid conv gives the logit. Convs
    feeding instance norm have no bias, which the norm would cancel.
    """

    @dataclass
    class Config(PipelineDiscriminatorConfig):
        ndf: int = 64
        """Channels of the first conv; each later conv doubles them (capped at channel_max)."""
        channel_max: int = 512
        """Channel cap."""

    def __init__(self, config: Config):
        super().__init__(config)
        layers: list[nn.Module] = []
        in_channels, res, width = config.img_channels, config.img_resolution, config.ndf
        while res > 4:
            out_channels = min(width, config.channel_max)
            first = not layers
            layers.append(spectral_norm(nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1, bias=first)))
            if not first:
                layers.append(nn.InstanceNorm2d(out_channels))
            layers.append(nn.LeakyReLU(0.2))
            in_channels, res, width = out_channels, res // 2, width * 2
        layers.append(spectral_norm(nn.Conv2d(in_channels, 1, 4)))
        self.main = nn.Sequential(*layers)

    @classmethod
    def check_config(cls, config: Config) -> None:
        super().check_config(config)
        for name in ("ndf", "channel_max"):
            if getattr(config, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(config, name)}")

    @staticmethod
    def tiny(config: Config) -> Config:
        """CPU size: 8 channels doubling up to 16."""
        return config.replace(ndf=8, channel_max=16)

    def _discriminate(self, image: torch.Tensor, res: int, c: torch.Tensor | None,
                      patch: torch.Tensor | PatchParams | None, alpha: float) -> DiscriminatorOutput:
        return DiscriminatorOutput(self.main(image).flatten(1), None, None)


# --- reading configs ------------------------------------------------------------------------

_FORMAT_1_FIELDS = frozenset({
    "kind", "img_resolution", "img_channels", "channel_base", "channel_max", "c_dim", "pose_dim", "latent_dim",
    "mbstd_group_size", "progressive", "min_resolution", "patch_fourier_dim", "patch_fourier_scale",
    "patch_mapping_dim", "ndf",
})
"""Keys of the one lumped pipeline discriminator config that runs wrote before the kinds were
registered (format 1: always every field, whatever the kind). Each kind's fields kept their names,
and no kind has them all, so a dict with exactly these keys is format 1."""

_FORMAT_1_OFF = {"c_dim": 0, "pose_dim": 0, "latent_dim": 0, "progressive": False}
"""Format-1 fields that the lumped config refused to set on kinds that do not read them."""


def discriminator_config_from_dict(data: dict[str, Any] | ComponentConfig) -> ComponentConfig:
    """The registered discriminator config a saved dict describes.

    Reads ``{"kind": name, **fields}`` (:meth:`ComponentConfig.to_dict`) and the two forms written
    before discriminators were registered: EG3D's ``DiscriminatorConfig`` dict (no ``kind``) and the
    lumped pipeline config (a ``kind`` and every field of every kind), of which the kind's own fields
    are kept. Unknown keys are an error that names the kinds that have them.
    """
    if isinstance(data, ComponentConfig):
        return data
    if not isinstance(data, dict):
        raise ValueError(f"a discriminator config must be a dict, got {type(data).__name__}")
    if "kind" not in data:
        return DiscriminatorConfig.from_dict(data)
    values = dict(data)
    cls = DISCRIMINATORS.get(values.pop("kind"))
    own = {f.name for f in dataclasses.fields(cls.Config)}
    if set(data) == _FORMAT_1_FIELDS and not cls.dual:  # format 1 was always written whole
        for name in sorted(set(values) & set(_FORMAT_1_OFF) - own):
            ignored = name == "progressive" and cls.always_progressive
            if values[name] != _FORMAT_1_OFF[name] and not ignored:
                raise ValueError(f"format-1 discriminator config sets {name}={values[name]!r} on a {cls.kind!r} "
                                 f"discriminator, which has no {name}")
        values = {name: value for name, value in values.items() if name in own}
    unknown = sorted(set(values) - own)
    if unknown:
        holders = {name: [kind for kind in DISCRIMINATORS.kinds()
                          if name in {f.name for f in dataclasses.fields(DISCRIMINATORS.get(kind).Config)}]
                   for name in unknown}
        where = "; ".join(f"{name} is a field of {', '.join(kinds)}" for name, kinds in holders.items() if kinds)
        raise ValueError(f"unknown discriminator {cls.kind!r} config keys: {', '.join(unknown)}"
                         + (f" ({where})" if where else ""))
    return cls.Config(**values)
