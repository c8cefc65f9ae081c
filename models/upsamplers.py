"""2D upsamplers of the non-EG3D presets: volume-rendered feature image -> final image.

* ``StyleGANUpsampler`` -- VolumeGAN, StyleSDF and StyleNeRF: StyleGAN2 'skip' synthesis blocks that
  start from the rendered feature image instead of a learned constant. StyleNeRF's ``nn_cat``
  upsampling is an option.
* ``GiraffeNeuralRenderer`` -- GIRAFFE's unmodulated CNN with per-scale RGB skips.

EG3D's super-resolution modules live in ``models/superresolution.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.discriminator import Conv2dLayer
from models.registry import ComponentConfig, Registry
from models.stylegan2 import NoiseMode, SynthesisBlock, SynthesisLayer, ToRGBLayer
from models.superresolution import Superresolution
from ops.stylegan2 import DEFAULT_RESAMPLE_FILTER, filter2d, setup_filter, upsample2d

UpsampleMode = Literal["stylegan", "nn_cat"]
UPSAMPLE_MODES: tuple[str, ...] = ("stylegan", "nn_cat")
"""conv0 of each upsampling block: StyleGAN2's FIR up-convolution, or StyleNeRF's nearest + concat."""


def _octaves(in_resolution: int, out_resolution: int) -> int:
    """log2(out / in), or ValueError unless out / in is a power of two >= 1."""
    if (
        not isinstance(in_resolution, (int, np.integer))
        or not isinstance(out_resolution, (int, np.integer))
        or in_resolution < 1
        or out_resolution < in_resolution
        or out_resolution % in_resolution
    ):
        raise ValueError(
            f"out_resolution / in_resolution must be a power of two >= 1, got in_resolution={in_resolution}, "
            f"out_resolution={out_resolution}"
        )
    ratio = out_resolution // in_resolution
    if ratio & (ratio - 1):
        raise ValueError(
            f"out_resolution / in_resolution must be a power of two >= 1, got in_resolution={in_resolution}, "
            f"out_resolution={out_resolution} (ratio {ratio})"
        )
    return int(ratio).bit_length() - 1


def _check_features(features: torch.Tensor, channels: int, resolution: int) -> None:
    if features.ndim != 4 or features.shape[1] != channels or features.shape[2:] != (resolution, resolution):
        raise ValueError(
            f"expected features [N, {channels}, {resolution}, {resolution}], got {list(features.shape)}"
        )


# --- StyleNeRF 'nn_cat' upsampling -------------------------------------------------------------

def quad_average_upsample(x: torch.Tensor) -> torch.Tensor:
    """Parameter-free x2 upsampling: each output pixel is the mean of the 2x2 input quad it lies in.

    x [N, C, H, W] -> [N, C, 2H, 2W]. Output pixel (2i + dy, 2j + dx) averages input rows
    {i, i - 1 + 2 dy} and columns {j, j - 1 + 2 dx}; the four sub-pixel phases are stacked as
    channels and interleaved with ``pixel_shuffle``. Borders replicate, so a constant stays constant.
    """
    n, c, h, w = x.shape
    padded = F.pad(x, [1, 1, 1, 1], mode="replicate")
    quads = F.avg_pool2d(padded, kernel_size=2, stride=1)  # [N, C, H + 1, W + 1]; quads[p, q] covers rows p-1..p
    phases = [quads[:, :, dy : dy + h, dx : dx + w] for dy in (0, 1) for dx in (0, 1)]
    stacked = torch.stack(phases, dim=2).reshape(n, c * 4, h, w)  # pixel_shuffle reads channel c*4 + dy*2 + dx
    return F.pixel_shuffle(stacked, 2)


class NNCatUpsample(nn.Module):
    """StyleNeRF's ``nn_cat`` x2 upsampling: [nearest copy, quad-average copy] -> 1x1 fuse -> FIR blur.

    The nearest copy keeps sharp, alias-free-by-construction values; the pixel-shuffled neighbour
    average supplies sub-pixel detail; a learned 1x1 adapter mixes the two, and the blur removes the
    remaining blockiness of nearest upsampling. x [N, C, H, W] -> [N, C, 2H, 2W].
    """

    def __init__(self, channels: int, resample_filter: Sequence[float] = DEFAULT_RESAMPLE_FILTER):
        super().__init__()
        self.channels = channels
        self.adapter = Conv2dLayer(2 * channels, channels, kernel_size=1)
        self.register_buffer("resample_filter", setup_filter(resample_filter))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nearest = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.adapter(torch.cat([nearest, quad_average_upsample(x)], dim=1))
        return filter2d(x, self.resample_filter)


class NNCatSynthesisLayer(SynthesisLayer):
    """``SynthesisLayer`` whose x2 upsampling is ``NNCatUpsample`` followed by a same-size modulated conv.

    Drop-in for a block's upsampling ``conv0``: same call signature, ``resolution`` is the output
    resolution (noise is drawn there), and it consumes one w like the layer it replaces.
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, **layer_kwargs):
        """``layer_kwargs`` go to ``SynthesisLayer`` (``up`` is fixed to 1: the upsampling happens before)."""
        super().__init__(in_channels, out_channels, w_dim, resolution, up=1, **layer_kwargs)
        self.upsampler = NNCatUpsample(in_channels, layer_kwargs.get("resample_filter", DEFAULT_RESAMPLE_FILTER))

    def forward(self, x: torch.Tensor, w: torch.Tensor, **layer_kwargs) -> torch.Tensor:
        """x [N, C_in, r, r], w [N, w_dim] -> [N, C_out, 2r, 2r]; ``layer_kwargs`` as ``SynthesisLayer.forward``."""
        return super().forward(self.upsampler(x), w, **layer_kwargs)


# --- StyleGAN2 upsampler -----------------------------------------------------------------------

_UPSAMPLE_LAYERS: dict[str, type[nn.Module] | None] = {"stylegan": None, "nn_cat": NNCatSynthesisLayer}
"""The conv0 replacing SynthesisBlock's own in each upsampling block, by ``upsample_mode`` (None: keep it)."""


class StyleGANUpsampler(nn.Module):
    """VolumeGAN / StyleNeRF / StyleSDF upsampler: StyleGAN2 'skip' synthesis blocks from a feature image.

    Blocks: one at ``in_resolution`` that keeps the size (``upsample=False``, adapts the rendered
    features), then one per octave up to ``out_resolution``, each x2. The toRGB outputs are summed
    (upsampled with the FIR filter between blocks). Channels at resolution q are
    ``min(channel_base // q, channel_max)``.

    ``upsample_mode``: ``'stylegan'`` uses StyleGAN2's FIR up-convolution in each block's conv0;
    ``'nn_cat'`` (StyleNeRF) replaces it by ``NNCatUpsample`` followed by a same-size modulated conv.
    Both modes consume the same ws.

    ws layout follows ``SynthesisNetwork``: every block takes 2 conv ws, a block's toRGB shares the
    next block's first w, and the last toRGB takes one more, so ``num_ws = 2 * num_blocks + 1``.
    """

    def __init__(
        self,
        in_channels: int,
        in_resolution: int,
        out_resolution: int,
        w_dim: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        img_channels: int = 3,
        upsample_mode: str = "stylegan",
        conv_clamp: float | None = None,
    ):
        super().__init__()
        num_up = _octaves(in_resolution, out_resolution)
        if upsample_mode not in UPSAMPLE_MODES:
            raise ValueError(f"unknown upsample_mode {upsample_mode!r}; expected one of {UPSAMPLE_MODES}")
        self.in_channels = in_channels
        self.in_resolution = in_resolution
        self.out_resolution = out_resolution
        self.w_dim = w_dim
        self.img_channels = img_channels
        self.upsample_mode = upsample_mode
        self.block_resolutions = [in_resolution * 2**i for i in range(num_up + 1)]
        self.channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}

        self.num_ws = 0
        prev_channels = in_channels
        for idx, res in enumerate(self.block_resolutions):
            upsample = idx > 0  # the first block only adapts the rendered features
            is_last = res == out_resolution
            block = SynthesisBlock(prev_channels, self.channels[res], w_dim, res, img_channels, is_last,
                                   upsample=upsample, conv_clamp=conv_clamp)
            layer = _UPSAMPLE_LAYERS[upsample_mode] if upsample else None
            if layer is not None:
                block.conv0 = layer(prev_channels, self.channels[res], w_dim, res, conv_clamp=conv_clamp)
            self.num_ws += block.num_conv + (block.num_torgb if is_last else 0)
            setattr(self, f"b{res}", block)
            prev_channels = self.channels[res]

    def forward(self, features: torch.Tensor, ws: torch.Tensor, noise_mode: NoiseMode = "const",
                max_resolution: int | None = None, alpha: float = 1.0, **block_kwargs) -> torch.Tensor:
        """features [N, in_channels, r, r], ws [N, >= num_ws, w_dim] -> image [N, img_channels, R, R] float32.

        Only the first ``num_ws`` ws are used (callers slice their w+ themselves); fewer raise.
        ``block_kwargs`` go to every ``SynthesisBlock`` (``force_fp32``, ``fused_modconv``, ``update_emas``).
        The image is unbounded, like StyleGAN2's (roughly [-1, 1] once trained).

        Progressive growing (VolumeGAN, StyleNeRF): ``max_resolution`` stops after the block of that
        resolution, and ``alpha`` fades that block's toRGB in over the upsampled image below it
        (with skip outputs this is exactly ``alpha * new + (1 - alpha) * upsampled old``).
        """
        if max_resolution is not None and max_resolution not in self.block_resolutions:
            raise ValueError(f"max_resolution {max_resolution} is not one of the blocks' {self.block_resolutions}")
        _check_features(features, self.in_channels, self.in_resolution)
        if ws.ndim != 3 or ws.shape[0] != features.shape[0] or ws.shape[2] != self.w_dim:
            raise ValueError(f"expected ws [{features.shape[0]}, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        if ws.shape[1] < self.num_ws:
            raise ValueError(f"StyleGANUpsampler needs {self.num_ws} ws, got {ws.shape[1]}")
        x, img, w_idx = features, None, 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            # One w is shared between a block's toRGB and the next block's conv0 (SynthesisNetwork's layout).
            cur_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            below = img
            x, img = block(x, img, cur_ws, noise_mode=noise_mode, **block_kwargs)
            w_idx += block.num_conv
            if res == max_resolution:
                if alpha < 1 and below is not None:
                    img = torch.lerp(upsample2d(below, block.resample_filter), img, alpha)
                break
        return img


# --- GIRAFFE -----------------------------------------------------------------------------------

class GiraffeNeuralRenderer(nn.Module):
    """GIRAFFE's 2D neural renderer: feature image [N, in_channels, r, r] -> image [N, img_channels, R, R].

    ``conv_in`` (1x1, or identity when ``feature_channels`` equals ``in_channels``) sets the first
    width; each of the log2(R / r) blocks is nearest x2 upsampling, a 3x3 conv and LeakyReLU 0.2,
    block i having ``max(width // 2**(i + 1), min_channels)`` channels. ``to_rgb[0]`` maps the input
    scale and ``to_rgb[i + 1]`` block i's output to RGB with a 3x3 conv; the running RGB sum is
    bilinearly upsampled x2 before each block's RGB is added. The output is ``2 * sigmoid(sum) - 1``,
    i.e. in [-1, 1] like the other generators (GIRAFFE itself returns ``sigmoid(sum)`` in [0, 1]).
    """

    def __init__(
        self,
        in_channels: int = 256,
        in_resolution: int = 16,
        out_resolution: int = 256,
        min_channels: int = 32,
        img_channels: int = 3,
        feature_channels: int | None = None,
    ):
        super().__init__()
        num_blocks = _octaves(in_resolution, out_resolution)
        width = in_channels if feature_channels is None else feature_channels
        self.in_channels = in_channels
        self.in_resolution = in_resolution
        self.out_resolution = out_resolution
        self.img_channels = img_channels
        self.min_channels = min_channels
        self.conv_in = nn.Identity() if width == in_channels else nn.Conv2d(in_channels, width, 1)
        self.block_channels = [max(width // 2 ** (i + 1), min_channels) for i in range(num_blocks)]
        widths = [width] + self.block_channels
        self.blocks = nn.ModuleList(nn.Conv2d(widths[i], widths[i + 1], 3, padding=1) for i in range(num_blocks))
        self.to_rgb = nn.ModuleList(nn.Conv2d(c, img_channels, 3, padding=1) for c in widths)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """[N, in_channels, r, r] -> [N, img_channels, R, R] in [-1, 1]."""
        _check_features(features, self.in_channels, self.in_resolution)
        x = self.conv_in(features)
        rgb = self.to_rgb[0](x)
        for block, to_rgb in zip(self.blocks, self.to_rgb[1:]):
            x = F.leaky_relu(block(F.interpolate(x, scale_factor=2, mode="nearest")), 0.2)
            rgb = F.interpolate(rgb, scale_factor=2, mode="bilinear", align_corners=False) + to_rgb(x)
        return 2 * torch.sigmoid(rgb) - 1


# --- registered upsampler components ---------------------------------------------------------
#
# One call shape for every kind: ``upsample(features [N, C, r, r], ws slice, ...) -> image``.
# Each subclasses its network, so parameter names are ``upsampler.*`` as before.

UPSAMPLERS: Registry = Registry("upsampler")


class _UpsamplerFacts:
    needs_stylegan_ws: ClassVar[bool] = False
    """It reads StyleGAN2 ws (a FiLM mapping cannot drive it)."""
    identity: ClassVar[bool] = False
    """No upsampler: the neural rendering is the image."""
    tiny_resolutions: ClassVar[tuple[int, int]] = (32, 16)
    """(image, neural rendering) resolution of the ``-tiny`` reduction."""
    shares_last_ws: bool = False
    """It reads the last ws of the embedder and decoder instead of ws of its own (EG3D's layout)."""

    # upsample(features [N, C, r, r], ws, noise_mode, max_resolution, fade_alpha)
    #   -> (image [N, 3, R, R], image_raw [N, 3, r, r])


@UPSAMPLERS.register("none")
class NoUpsampler(_UpsamplerFacts, nn.Module):
    """The rendering is the image (a patch stays a patch)."""

    identity = True
    tiny_resolutions = (32, 32)
    num_ws = 0

    @dataclass
    class Config(ComponentConfig):
        pass

    def __init__(self, config: Config, channels: int = 3, in_resolution: int = 0, out_resolution: int = 0,
                 w_dim: int = 0):
        super().__init__()

    @staticmethod
    def tiny(config: Config) -> Config:
        return config

    def upsample(self, features, ws, noise_mode="const", max_resolution=None, fade_alpha=1.0):
        return features[:, :3], features[:, :3]


@UPSAMPLERS.register("eg3d_sr")
class EG3DSuperresolution(_UpsamplerFacts, Superresolution):
    """EG3D's super-resolution module (by its official name, or one of ours)."""

    needs_stylegan_ws = True
    tiny_resolutions = (64, 32)
    num_ws = 1

    @dataclass
    class Config(ComponentConfig):
        module: str = "training.superresolution.SuperresolutionHybrid8XDC"
        """Module name (see models.superresolution)."""
        share_last_ws: bool = False
        """Read the backbone's last w (EG3D's ws layout) instead of one of its own."""
        antialias: bool = True
        """Antialias when resizing the neural image to the module's input size."""
        num_fp16_res: int = 0
        """>0 runs the blocks in fp16 on CUDA (with conv clamp 256)."""
        fused_modconv_default: bool | str = "inference_only"
        """Grouped modulated convolution: True, False or 'inference_only'."""
        noise_mode: str = "none"
        """Noise mode of its layers ('none', 'const' or 'random'; EG3D's ``superresolution_noise_mode``)."""
        official_raw: bool = False
        """``image_raw`` as EG3D returns it (with block0's RGB added where the module does not resize),
        instead of the rendered feature image's first channels."""

    def __init__(self, config: Config, channels: int, in_resolution: int, out_resolution: int, w_dim: int):
        super().__init__(config.module, channels=channels, img_resolution=out_resolution, w_dim=w_dim,
                         sr_num_fp16_res=config.num_fp16_res, sr_antialias=config.antialias,
                         fused_modconv_default=config.fused_modconv_default)
        self.shares_last_ws, self.noise_mode = bool(config.share_last_ws), config.noise_mode
        self.official_raw = bool(config.official_raw)
        self.num_ws = 0 if self.shares_last_ws else 1

    @staticmethod
    def tiny(config: Config) -> Config:
        return config.replace(module="studio.SuperresolutionLite2X64")

    def upsample(self, features, ws, noise_mode="const", max_resolution=None, fade_alpha=1.0):
        image, raw = self(features[:, :3], features, ws, noise_mode=self.noise_mode)
        return image, raw if self.official_raw else features[:, :3]


@UPSAMPLERS.register("stylegan")
class StyleGANUpsamplerComponent(_UpsamplerFacts, StyleGANUpsampler):
    """StyleGAN2 skip blocks from the feature image (VolumeGAN, StyleSDF, StyleNeRF); grows in training."""

    needs_stylegan_ws = True

    @dataclass
    class Config(ComponentConfig):
        channel_base: int = 32768
        """Channels at res r = min(channel_base // r, channel_max)."""
        channel_max: int = 512
        """Channel cap."""
        upsample_mode: str = "stylegan"
        """'stylegan' or 'nn_cat' (StyleNeRF)."""

    def __init__(self, config: Config, channels: int, in_resolution: int, out_resolution: int, w_dim: int):
        super().__init__(channels, in_resolution, out_resolution, w_dim, channel_base=config.channel_base,
                         channel_max=config.channel_max, upsample_mode=config.upsample_mode)

    @staticmethod
    def tiny(config: Config) -> Config:
        return config.replace(channel_base=256, channel_max=16)

    def upsample(self, features, ws, noise_mode="const", max_resolution=None, fade_alpha=1.0):
        image = self(features, ws, noise_mode=noise_mode, max_resolution=max_resolution, alpha=fade_alpha)
        return image, features[:, :3]


@UPSAMPLERS.register("volumegan")
class VolumeGANSynthesis(_UpsamplerFacts, nn.Module):
    """VolumeGAN's official 2D synthesis: StyleGAN2 'skip' layers with 1x1 kernels from the feature image.

    No layer at the rendering resolution: the running image starts as the feature image's first 3
    channels. Per octave k (1..K): ``layer{2k-1}`` (modulated 1x1 conv, x2 FIR upsampling, noise, bias,
    LReLU), ``layer{2k}`` (same without upsampling) and ``output{k}`` (1x1 toRGB, no demodulation) added
    to the FIR-upsampled running image; every output clamped to +-``conv_clamp``. Channels at res q are
    ``min(channel_base // q, channel_max)``; the feature image must have the rendering resolution's.
    ws: index 0 is unused (VolumeGAN's layout), ``layer j`` reads j and ``output k`` reads 2k + 1, so
    ``num_ws = 2 K + 2``.
    """

    needs_stylegan_ws = True

    @dataclass
    class Config(ComponentConfig):
        channel_base: int = 32768
        """Channels at res q = min(channel_base // q, channel_max) (VolumeGAN's ``fmaps_base``)."""
        channel_max: int = 512
        """Channel cap (``fmaps_max``)."""
        conv_clamp: float = 256.0
        """Clamp of every layer's output (0: none; VolumeGAN FFHQ: 256)."""

    def __init__(self, config: Config, channels: int, in_resolution: int, out_resolution: int, w_dim: int):
        super().__init__()
        num_up = _octaves(in_resolution, out_resolution)
        clamp = float(config.conv_clamp) or None
        self.in_channels, self.in_resolution, self.out_resolution = channels, in_resolution, out_resolution
        self.w_dim, self.num_octaves = w_dim, num_up
        self.channels = {in_resolution * 2**i: min(config.channel_base // (in_resolution * 2**i), config.channel_max)
                         for i in range(num_up + 1)}
        if channels != self.channels[in_resolution]:
            raise ValueError(f"VolumeGAN's synthesis needs {self.channels[in_resolution]} feature channels at "
                             f"{in_resolution} px (channel_base // {in_resolution}), got {channels}")
        self.register_buffer("resample_filter", setup_filter(DEFAULT_RESAMPLE_FILTER))
        previous = channels
        for k in range(1, num_up + 1):
            res = in_resolution * 2**k
            out = self.channels[res]
            setattr(self, f"layer{2 * k - 1}", SynthesisLayer(previous, out, w_dim, res, kernel_size=1, up=2,
                                                               conv_clamp=clamp))
            setattr(self, f"layer{2 * k}", SynthesisLayer(out, out, w_dim, res, kernel_size=1, conv_clamp=clamp))
            setattr(self, f"output{k}", ToRGBLayer(out, 3, w_dim, kernel_size=1, conv_clamp=clamp))
            previous = out
        self.num_ws = 2 * num_up + 2

    @staticmethod
    def tiny(config: Config) -> Config:
        return config.replace(channel_base=256, channel_max=16)

    def forward(self, features: torch.Tensor, ws: torch.Tensor, noise_mode: NoiseMode = "const",
                max_resolution: int | None = None, alpha: float = 1.0) -> torch.Tensor:
        """features [N, C, r, r], ws [N, num_ws, w_dim] -> image [N, 3, R, R] (unbounded). ``max_resolution``
        / ``alpha``: progressive growing, as :class:`StyleGANUpsampler`."""
        _check_features(features, self.in_channels, self.in_resolution)
        if ws.ndim != 3 or ws.shape[0] != features.shape[0] or ws.shape[1] < self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"expected ws [{features.shape[0]}, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        if max_resolution is not None and max_resolution not in self.channels:
            raise ValueError(f"max_resolution {max_resolution} is not one of {sorted(self.channels)}")
        x, img = features, features[:, :3]
        for k in range(1, self.num_octaves + 1):
            if self.in_resolution * 2 ** (k - 1) == max_resolution:
                break
            x = getattr(self, f"layer{2 * k - 1}")(x, ws[:, 2 * k - 1], noise_mode=noise_mode, fused_modconv=False)
            x = getattr(self, f"layer{2 * k}")(x, ws[:, 2 * k], noise_mode=noise_mode, fused_modconv=False)
            below = upsample2d(img, self.resample_filter)
            img = below + getattr(self, f"output{k}")(x, ws[:, 2 * k + 1], fused_modconv=False)
            if self.in_resolution * 2**k == max_resolution and alpha < 1:
                img = torch.lerp(below, img, alpha)
        return img

    def upsample(self, features, ws, noise_mode="const", max_resolution=None, fade_alpha=1.0):
        image = self(features, ws, noise_mode=noise_mode, max_resolution=max_resolution, alpha=fade_alpha)
        return image, features[:, :3]


@UPSAMPLERS.register("giraffe")
class GiraffeUpsampler(_UpsamplerFacts, GiraffeNeuralRenderer):
    """GIRAFFE's neural renderer (no ws)."""

    num_ws = 0

    @dataclass
    class Config(ComponentConfig):
        min_channels: int = 32
        """Channel floor."""

    def __init__(self, config: Config, channels: int, in_resolution: int, out_resolution: int, w_dim: int = 0):
        super().__init__(channels, in_resolution, out_resolution, min_channels=config.min_channels)

    @staticmethod
    def tiny(config: Config) -> Config:
        return config.replace(min_channels=4)

    def upsample(self, features, ws, noise_mode="const", max_resolution=None, fade_alpha=1.0):
        return self(features), features[:, :3]
