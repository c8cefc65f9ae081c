"""Discriminators of the non-EG3D 3D-aware GAN presets (methods.md sections 3.2-3.9).

Four kinds, built by :func:`build_pipeline_discriminator` from a :class:`PipelineDiscriminatorConfig`:

* ``'resnet'``: StyleGAN2 residual discriminator on one image, minibatch std, optional projection
  conditioning on a label c (VolumeGAN, StyleNeRF, StyleSDF stage 2).
* ``'coordconv'``: residual blocks of CoordConv 3x3 convolutions with LeakyReLU 0.2 whose head also
  predicts the latent code and the pose (pi-GAN, GRAM, StyleSDF stage 1).
* ``'patch'``: the StyleGAN2 residual discriminator on patches, each block's down-sampling conv
  hyper-modulated by the patch's (scale, offset) (EpiGRAF).
* ``'dcgan'``: strided 4x4 convolutions with spectral and instance norm (GRAF, GIRAFFE).

Every module has the same call::

    forward(image [N, C, H, W], c [N, c_dim] | None = None, patch [N, 3] | None = None,
            alpha: float = 1.0) -> DiscriminatorOutput(logits [N, 1], pose [N, P] | None, latent [N, L] | None)

Outputs are float32. ``c`` is ignored when ``c_dim == 0`` and ``patch`` by all kinds but 'patch',
so one training loop can pass both to any kind.

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

from models.discriminator import Conv2dLayer, DiscriminatorBlock, DiscriminatorEpilogue, MinibatchStdLayer
from models.stylegan2 import FullyConnectedLayer, MappingNetwork
from models.typed_config import dataclass_from_dict
from ops.patch_sampling import PatchParams
from ops.stylegan2 import ACTIVATIONS, DEFAULT_RESAMPLE_FILTER, bias_act, modulated_conv2d, setup_filter

PIPELINE_DISCRIMINATOR_KINDS = ("resnet", "coordconv", "patch", "dcgan")
"""Values of :attr:`PipelineDiscriminatorConfig.kind`."""


# --- configuration ----------------------------------------------------------------------------

@dataclass
class PipelineDiscriminatorConfig:
    """Architecture of one pipeline discriminator (see the module docstring for the kinds)."""

    kind: str = "resnet"
    """'resnet' (StyleGAN2), 'coordconv' (pi-GAN/GRAM/StyleSDF-1), 'patch' (EpiGRAF) or 'dcgan' (GRAF/GIRAFFE)."""
    img_resolution: int = 256
    """Largest input resolution, a power of two >= 8 (the patch size for 'patch')."""
    img_channels: int = 3
    """Channels of the input image."""
    channel_base: int = 32768
    """Feature maps of 'resnet'/'coordconv'/'patch': channels at resolution r are min(channel_base // r, channel_max)."""
    channel_max: int = 512
    """Channel cap (also caps the doubling widths of 'dcgan')."""
    c_dim: int = 0
    """'resnet'/'patch': dimensionality of the label c for projection conditioning (0 = unconditional)."""
    pose_dim: int = 0
    """'coordconv': number of predicted pose values (2 = yaw, pitch; 0 = no pose head)."""
    latent_dim: int = 0
    """'coordconv': number of predicted latent values (pi-GAN: 256; 0 = no latent head)."""
    mbstd_group_size: int | None = 4
    """Minibatch-std group size of 'resnet'/'coordconv'/'patch' (None: whole batch, 0: no mbstd layer)."""
    progressive: bool = False
    """'resnet'/'patch': accept power-of-two inputs in [min_resolution, img_resolution] with fade-in alpha
    ('coordconv' always does)."""
    min_resolution: int = 8
    """Smallest accepted input resolution of a progressive discriminator (a power of two >= 8)."""
    patch_fourier_dim: int = 256
    """'patch': size of the Fourier features of (scale, offset_x, offset_y); even, >= 6."""
    patch_fourier_scale: float = 1000.0
    """'patch': multiplier applied to the patch parameters before the Fourier features (EpiGRAF: 1000)."""
    patch_mapping_dim: int = 512
    """'patch': size of the hyper-modulation vector that the mapping MLP produces."""
    ndf: int = 64
    """'dcgan': channels of the first conv; each later conv doubles them (capped at channel_max)."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineDiscriminatorConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error that names them."""
        return dataclass_from_dict(cls, data, "pipeline discriminator config")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return dataclasses.asdict(self)

    def channels(self, res: int) -> int:
        """Feature channels at resolution ``res`` for the StyleGAN2-style kinds."""
        return min(self.channel_base // res, self.channel_max)

    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent setting."""
        if self.kind not in PIPELINE_DISCRIMINATOR_KINDS:
            raise ValueError(f"unknown discriminator kind {self.kind!r}; expected one of "
                             f"{', '.join(PIPELINE_DISCRIMINATOR_KINDS)}")
        if not _is_pow2(self.img_resolution) or self.img_resolution < 8:
            raise ValueError(f"img_resolution must be a power of two >= 8, got {self.img_resolution}")
        if self.is_progressive:
            if not _is_pow2(self.min_resolution) or not 8 <= self.min_resolution <= self.img_resolution:
                raise ValueError(f"min_resolution must be a power of two in [8, img_resolution="
                                 f"{self.img_resolution}], got {self.min_resolution}")
        for name in ("img_channels", "channel_base", "channel_max", "ndf"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.kind != "dcgan" and self.channels(self.img_resolution) < 1:
            raise ValueError(f"channel_base {self.channel_base} leaves no channels at resolution {self.img_resolution}")
        for name in ("c_dim", "pose_dim", "latent_dim"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.c_dim and self.kind not in ("resnet", "patch"):
            raise ValueError(f"c_dim conditioning is for kinds 'resnet' and 'patch', not {self.kind!r}")
        if (self.pose_dim or self.latent_dim) and self.kind != "coordconv":
            raise ValueError(f"pose_dim/latent_dim heads are for kind 'coordconv', not {self.kind!r}")
        if self.progressive and self.kind == "dcgan":
            raise ValueError("kind 'dcgan' is not progressive; set progressive=False")
        if self.mbstd_group_size is not None and self.mbstd_group_size < 0:
            raise ValueError(f"mbstd_group_size must be None or >= 0, got {self.mbstd_group_size}")
        if self.kind == "patch":
            if self.patch_fourier_dim < 6 or self.patch_fourier_dim % 2:
                raise ValueError(f"patch_fourier_dim must be even and >= 6, got {self.patch_fourier_dim}")
            if not self.patch_fourier_scale > 0:
                raise ValueError(f"patch_fourier_scale must be positive, got {self.patch_fourier_scale}")
            if self.patch_mapping_dim < 1:
                raise ValueError(f"patch_mapping_dim must be positive, got {self.patch_mapping_dim}")

    @property
    def is_progressive(self) -> bool:
        """Whether the built module accepts lower-resolution inputs ('coordconv' always does)."""
        return self.progressive or self.kind == "coordconv"


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


class _PipelineDiscriminator(nn.Module):
    """The call shared by all kinds: checks image and alpha, casts to float32, runs :meth:`_discriminate`.

    ``input_resolutions`` lists the accepted input sides, largest first (only img_resolution
    unless the config is progressive).
    """

    def __init__(self, config: PipelineDiscriminatorConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.img_resolution = config.img_resolution
        top = int(math.log2(config.img_resolution))
        low = int(math.log2(config.min_resolution)) if config.is_progressive else top
        self.input_resolutions = [2**i for i in range(top, low - 1, -1)]

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
        if not self.config.is_progressive:
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
    """

    def __init__(self, config: PipelineDiscriminatorConfig):
        super().__init__(config)
        self.block_resolutions = [2**i for i in range(int(math.log2(config.img_resolution)), 2, -1)]
        self.fromrgb = nn.ModuleDict()
        self.blocks = nn.ModuleDict()

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

class ResNetDiscriminator(_GrowingTrunk):
    """StyleGAN2 residual discriminator on one image (VolumeGAN, StyleNeRF, StyleSDF stage 2).

    image [N, img_channels, R, R] (R = img_resolution, or lower when progressive) and
    c [N, c_dim] -> logits [N, 1]. With c_dim > 0 the logit is a projection on the mapped label,
    as in EG3D's ``DualDiscriminator``; blocks and head are that discriminator's.
    """

    def __init__(self, config: PipelineDiscriminatorConfig):
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


class PatchDiscriminator(ResNetDiscriminator):
    """EpiGRAF's patch discriminator: the residual discriminator with hyper-modulated blocks.

    image [N, C, R, R] (R = patch size = img_resolution), patch [N, 3] rows (scale, offset_x,
    offset_y) (or a :class:`ops.patch_sampling.PatchParams`; None = the full image (1, 0, 0))
    -> logits [N, 1]. The patch row is Fourier-encoded by the fixed buffer ``patch_freqs``
    [3, patch_fourier_dim / 2] as [sin, cos]((patch_fourier_scale * patch) @ patch_freqs), mapped
    to a [N, patch_mapping_dim] code by a 2-layer MLP, and each block's affine turns the code into
    per-input-channel scales of its conv1.
    """

    def __init__(self, config: PipelineDiscriminatorConfig):
        super().__init__(config)
        self.register_buffer("patch_freqs", self._fourier_frequencies(config.patch_fourier_dim // 2,
                                                                       config.patch_fourier_scale))
        self.patch_mapping = MappingNetwork(z_dim=0, c_dim=config.patch_fourier_dim, w_dim=config.patch_mapping_dim,
                                            num_ws=None, num_layers=2, w_avg_beta=None)

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


class CoordConvDiscriminator(_GrowingTrunk):
    """pi-GAN / GRAM / StyleSDF-stage-1 discriminator: CoordConv residual blocks with extra heads.

    image [N, img_channels, r, r], r any power of two in [min_resolution, img_resolution] (with
    fade-in alpha) -> logits [N, 1], latent [N, latent_dim] (None if 0), pose [N, pose_dim] (None
    if 0). The head at 4x4 is an optional minibatch-std layer and one 4x4 conv giving
    1 + latent_dim + pose_dim values, split in that order (pi-GAN's order). Layers are plain torch
    convolutions (default init), as these methods train with plain Adam learning rates.
    """

    def __init__(self, config: PipelineDiscriminatorConfig):
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

class DCGANDiscriminator(_PipelineDiscriminator):
    """GRAF / GIRAFFE discriminator: spectrally normalised strided convolutions.

    image [N, img_channels, R, R] (R = img_resolution) -> logits [N, 1]. Each 4x4 stride-2 conv
    halves R down to 4 (widths ndf, 2 ndf, 4 ndf, ... capped at channel_max), followed by instance
    norm (not after the first) and LeakyReLU 0.2; a final 4x4 valid conv gives the logit. Convs
    feeding instance norm have no bias, which the norm would cancel.
    """

    def __init__(self, config: PipelineDiscriminatorConfig):
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

    def _discriminate(self, image: torch.Tensor, res: int, c: torch.Tensor | None,
                      patch: torch.Tensor | PatchParams | None, alpha: float) -> DiscriminatorOutput:
        return DiscriminatorOutput(self.main(image).flatten(1), None, None)


# --- factory ----------------------------------------------------------------------------------

_KIND_CLASSES: dict[str, type[nn.Module]] = {
    "resnet": ResNetDiscriminator,
    "coordconv": CoordConvDiscriminator,
    "patch": PatchDiscriminator,
    "dcgan": DCGANDiscriminator,
}


def build_pipeline_discriminator(config: PipelineDiscriminatorConfig) -> nn.Module:
    """The discriminator described by ``config`` (ValueError for an inconsistent config)."""
    config.validate()
    return _KIND_CLASSES[config.kind](config)
