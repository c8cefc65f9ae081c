"""2D upsamplers of the non-EG3D presets: volume-rendered feature image -> final image.

* ``StyleGANUpsampler`` -- VolumeGAN, StyleSDF and StyleNeRF: StyleGAN2 'skip' synthesis blocks that
  start from the rendered feature image instead of a learned constant. StyleNeRF's ``nn_cat``
  upsampling is an option.
* ``GiraffeNeuralRenderer`` -- GIRAFFE's unmodulated CNN with per-scale RGB skips.

EG3D's super-resolution modules live in ``models/superresolution.py``.
"""

from __future__ import annotations

import math
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
from ops.stylegan2 import (
    DEFAULT_RESAMPLE_FILTER,
    bias_act,
    filter2d,
    modulated_conv2d,
    setup_filter,
    upfirdn2d,
    upsample2d,
)

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
    ``blur``: each bilinear RGB upsampling is followed by GIRAFFE's normalised [1, 2, 1]^2 blur with
    reflect padding (kornia ``filter2D``).
    """

    def __init__(
        self,
        in_channels: int = 256,
        in_resolution: int = 16,
        out_resolution: int = 256,
        min_channels: int = 32,
        img_channels: int = 3,
        feature_channels: int | None = None,
        blur: bool = False,
    ):
        super().__init__()
        num_blocks = _octaves(in_resolution, out_resolution)
        self.blur = bool(blur)
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
            rgb = F.interpolate(rgb, scale_factor=2, mode="bilinear", align_corners=False)
            rgb = (_blur_121(rgb) if self.blur else rgb) + to_rgb(x)
        return 2 * torch.sigmoid(rgb) - 1


def _blur_121(x: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] filtered by [1, 2, 1]^2 / 16 per channel, reflect padding (GIRAFFE's ``Blur``)."""
    taps = x.new_tensor([1.0, 2.0, 1.0])
    kernel = (taps[None, :] * taps[:, None]) / 16
    padded = F.pad(x, [1, 1, 1, 1], mode="reflect")
    return F.conv2d(padded, kernel.expand(x.shape[1], 1, 3, 3), groups=x.shape[1])


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

    maps_own_ws: ClassVar[bool] = False
    """It fills its ws slots itself (:meth:`ws_from_mapping`) and tracks their mean in the mapping's
    ``w_avg`` (StyleSDF's decoder)."""

    def ws_from_mapping(self, ws: torch.Tensor, slots: slice, w_avg: torch.Tensor, psi: float,
                        update_emas: bool = False) -> torch.Tensor:
        """The mapping's ws [N, num_ws, w_dim] with this upsampler's ``slots`` filled as it reads them
        (StyleSDF's decoder maps the renderer w through its own mapping); ``w_avg``: the mapping's
        mean ws. Most upsamplers read the mapping's ws as they are."""
        return ws


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
        blur: bool = False
        """Blur each bilinear RGB upsampling with [1, 2, 1]^2 (official GIRAFFE)."""

    def __init__(self, config: Config, channels: int, in_resolution: int, out_resolution: int, w_dim: int = 0):
        super().__init__(channels, in_resolution, out_resolution, min_channels=config.min_channels, blur=config.blur)

    @staticmethod
    def tiny(config: Config) -> Config:
        return config.replace(min_channels=4)

    def upsample(self, features, ws, noise_mode="const", max_resolution=None, fade_alpha=1.0):
        return self(features), features[:, :3]


# --- StyleSDF's decoder (rosinality-style StyleGAN2) ------------------------------------------------

def _fir_kernel(taps: Sequence[float], gain: float) -> torch.Tensor:
    k = torch.tensor(taps, dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k / k.sum() * gain


def _upfirdn(x: torch.Tensor, kernel: torch.Tensor, up: int, pad: tuple[int, int]) -> torch.Tensor:
    """rosinality's native ``upfirdn2d`` (down 1): insert zeros (x up), pad, filter with the flipped kernel."""
    n, c, h, w = x.shape
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    weight = torch.flip(kernel, [0, 1]).to(x.dtype)[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, weight, groups=c)


class EqualLinear(nn.Module):
    """rosinality's ``EqualLinear``: ``x @ (W lr / sqrt(fan_in)).T + b lr``, optionally followed by
    leaky ReLU(0.2) x sqrt(2) (``fused_lrelu``)."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activation: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale, self.lr_mul, self.activation = (1 / math.sqrt(in_dim)) * lr_mul, lr_mul, activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation:
            out = F.linear(x, self.weight * self.scale)
            return F.leaky_relu(out + self.bias * self.lr_mul, 0.2) * math.sqrt(2)
        return F.linear(x, self.weight * self.scale, bias=self.bias * self.lr_mul)


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(torch.mean(x ** 2, dim=1, keepdim=True) + 1e-8)


class _Blur(nn.Module):
    def __init__(self, taps: Sequence[float], pad: tuple[int, int], gain: float):
        super().__init__()
        self.register_buffer("kernel", _fir_kernel(taps, gain))
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _upfirdn(x, self.kernel, 1, self.pad)


class _Upsample(nn.Module):
    def __init__(self, taps: Sequence[float], factor: int = 2):
        super().__init__()
        self.register_buffer("kernel", _fir_kernel(taps, factor ** 2))
        p = len(taps) - factor
        self.factor, self.pad = factor, ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _upfirdn(x, self.kernel, self.factor, self.pad)


class ModulatedConv2d(nn.Module):
    """rosinality's modulated conv: style = EqualLinear(w) (bias 1), kernel x style / sqrt(in k k),
    demodulated per output channel; the upsampling form is a stride-2 transposed conv + a [1,3,3,1] blur."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, w_dim: int, demodulate: bool = True,
                 upsample: bool = False, blur_kernel: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.demodulate, self.upsample, self.padding = demodulate, upsample, kernel_size // 2
        self.scale = 1 / math.sqrt(in_channels * kernel_size ** 2)
        if upsample:
            p = (len(blur_kernel) - 2) - (kernel_size - 1)
            self.blur = _Blur(blur_kernel, ((p + 1) // 2 + 1, p // 2 + 1), gain=4)
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        self.modulation = EqualLinear(w_dim, in_channels, bias_init=1)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        n, c, h, wd = x.shape
        style = self.modulation(w).view(n, 1, c, 1, 1)
        weight = self.scale * self.weight * style
        if self.demodulate:
            demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8)
            weight = weight * demod.view(n, self.out_channels, 1, 1, 1)
        k = self.kernel_size
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(n * c, self.out_channels, k, k)
            out = F.conv_transpose2d(x.reshape(1, n * c, h, wd), weight, padding=0, stride=2, groups=n)
            return self.blur(out.reshape(n, self.out_channels, out.shape[-2], out.shape[-1]))
        weight = weight.reshape(n * self.out_channels, c, k, k)
        out = F.conv2d(x.reshape(1, n * c, h, wd), weight, padding=self.padding, groups=n)
        return out.reshape(n, self.out_channels, h, wd)


class _NoiseInjection(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return x + self.weight * noise


class _FusedLeakyReLU(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.bias.view(1, -1, 1, 1), 0.2) * math.sqrt(2)


class _StyledConv(nn.Module):
    """conv -> + noise.weight x noise -> leaky ReLU(x + activate.bias). ``bias`` is StyleSDF's dead
    parameter (kept so the official state dict loads; never used)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, upsample: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, w_dim, upsample=upsample)
        self.noise = _NoiseInjection()
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))
        self.activate = _FusedLeakyReLU(out_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.activate(self.noise(self.conv(x, w), noise))


class _ToRGB(nn.Module):
    def __init__(self, in_channels: int, w_dim: int, upsample: bool = True):
        super().__init__()
        if upsample:
            self.upsample = _Upsample((1, 3, 3, 1))
        self.conv = ModulatedConv2d(in_channels, 3, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, w) + self.bias
        return out if skip is None else out + self.upsample(skip)


def stylesdf_channels(resolution: int, channel_multiplier: int, channel_max: int) -> int:
    """rosinality's channel table: 512 up to 32 px, then 256, 128, 64, 32, 16 x multiplier (capped)."""
    table = {64: 256, 128: 128, 256: 64, 512: 32, 1024: 16, 2048: 8}
    return min(512 if resolution <= 32 else table.get(resolution, 8) * channel_multiplier, channel_max)


class StyleSDFDecoder(nn.Module):
    """StyleSDF's ``Decoder`` (model.py): its own mapping ``style`` (PixelNorm + equalized-lr layers at
    lr x ``lr_mul``) and a rosinality StyleGAN2 generator that starts with a modulated 3x3 conv at
    the renderer's resolution; ``noises.noise_i`` are the stored noise buffers."""

    def __init__(self, in_channels: int, in_resolution: int, out_resolution: int, renderer_w_dim: int, w_dim: int,
                 mapping_layers: int, lr_mul: float, channel_multiplier: int, channel_max: int):
        super().__init__()
        octaves = _octaves(in_resolution, out_resolution)
        self.w_dim, self.n_latent = w_dim, 2 * octaves + 2
        self.style = nn.Sequential(PixelNorm(), *(EqualLinear(renderer_w_dim if i == 0 else w_dim, w_dim, lr_mul=lr_mul,
                                                              activation=True) for i in range(mapping_layers)))
        ch = stylesdf_channels(in_resolution, channel_multiplier, channel_max)
        self.conv1 = _StyledConv(in_channels, ch, w_dim)
        self.to_rgb1 = _ToRGB(ch, w_dim, upsample=False)
        self.convs, self.to_rgbs, self.noises = nn.ModuleList(), nn.ModuleList(), nn.Module()
        in_log = int(in_resolution).bit_length() - 1
        for i in range(2 * octaves + 1):
            size = 2 ** ((i + 2 * in_log + 1) // 2)
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, size, size))
        res = in_resolution
        for _ in range(octaves):
            res *= 2
            out = stylesdf_channels(res, channel_multiplier, channel_max)
            self.convs.append(_StyledConv(ch, out, w_dim, upsample=True))
            self.convs.append(_StyledConv(out, out, w_dim))
            self.to_rgbs.append(_ToRGB(out, w_dim))
            ch = out

    def forward(self, features: torch.Tensor, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """features [N, C, r, r], ws [N, n_latent, w_dim] (after the decoder mapping and truncation)."""
        noises = []
        for i in range(len(self.convs) + 1):
            buffer = getattr(self.noises, f"noise_{i}")
            if noise_mode == "random":
                noises.append(torch.randn(features.shape[0], 1, *buffer.shape[2:], device=features.device))
            else:
                noises.append(buffer if noise_mode == "const" else torch.zeros_like(buffer))
        out = self.conv1(features, ws[:, 0], noises[0])
        skip = self.to_rgb1(out, ws[:, 1])
        for k, to_rgb in enumerate(self.to_rgbs):
            out = self.convs[2 * k](out, ws[:, 2 * k + 1], noises[2 * k + 1])
            out = self.convs[2 * k + 1](out, ws[:, 2 * k + 2], noises[2 * k + 2])
            skip = to_rgb(out, ws[:, 2 * k + 3], skip)
        return skip


@UPSAMPLERS.register("stylesdf_decoder")
class StyleSDFDecoderUpsampler(_UpsamplerFacts, nn.Module):
    """StyleSDF's 2D decoder (:class:`StyleSDFDecoder`) on the composited feature channels (not RGB).

    Its ws are the decoder's own: :meth:`ws_from_mapping` maps the (truncated) renderer w through the
    decoder mapping, truncates towards their mean (the mapping's ``w_avg`` over these slots) and
    packs each ``w_dim``-wide decoder w into ``w_dim / renderer w_dim`` slots of the pipeline's ws."""

    needs_stylegan_ws = True
    maps_own_ws = True

    @dataclass
    class Config(ComponentConfig):
        w_dim: int = 512
        """Decoder w size (a multiple of the renderer's w size)."""
        mapping_layers: int = 5
        """Equalized-lr layers of the decoder mapping (after PixelNorm)."""
        lr_multiplier: float = 0.01
        """Learning-rate multiplier of the decoder mapping."""
        channel_multiplier: int = 2
        """rosinality's channel multiplier (channels 256, 128, 64, 32, 16 x it at 64 ... 1024 px)."""
        channel_max: int = 512
        """Channel cap."""

    def __init__(self, config: Config, channels: int, in_resolution: int, out_resolution: int, w_dim: int):
        super().__init__()
        if w_dim < 1 or config.w_dim % w_dim:
            raise ValueError(f"upsampler.w_dim {config.w_dim} must be a multiple of the renderer's w size {w_dim}")
        self.pack = config.w_dim // w_dim
        self.net = StyleSDFDecoder(channels - 3, in_resolution, out_resolution, w_dim, config.w_dim,
                                   config.mapping_layers, config.lr_multiplier, config.channel_multiplier,
                                   config.channel_max)
        self.num_ws = self.net.n_latent * self.pack

    @staticmethod
    def tiny(config: Config) -> Config:
        return config.replace(w_dim=32, mapping_layers=2, channel_max=16)

    def unpack(self, ws: torch.Tensor) -> torch.Tensor:
        """Packed slots [N, n_latent * pack, w] -> decoder ws [N, n_latent, pack * w]."""
        return ws.reshape(ws.shape[0], self.net.n_latent, self.net.w_dim)

    def pack_ws(self, ws: torch.Tensor) -> torch.Tensor:
        return ws.reshape(ws.shape[0], self.num_ws, -1)

    def ws_from_mapping(self, ws: torch.Tensor, slots: slice, w_avg: torch.Tensor, psi: float,
                        update_emas: bool = False) -> torch.Tensor:
        decoder = self.net.style(ws[:, 0])[:, None].repeat(1, self.net.n_latent, 1)
        if update_emas:  # the mean of the decoder ws (training runs at psi 1: of the untruncated renderer w)
            w_avg[slots] = self.pack_ws(decoder.detach().mean(0, keepdim=True))[0].lerp(w_avg[slots], 0.995)
        if psi < 1:
            mean = self.unpack(w_avg[slots][None])
            decoder = mean + psi * (decoder - mean)
        ws = ws.clone()
        ws[:, slots] = self.pack_ws(decoder)
        return ws

    def upsample(self, features, ws, noise_mode="const", max_resolution=None, fade_alpha=1.0):
        return self.net(features[:, 3:], self.unpack(ws), noise_mode=noise_mode), features[:, :3]


# --- StyleNeRF's upsampler -------------------------------------------------------------------------

class MagnitudeScaledLayer(SynthesisLayer):
    """StyleNeRF's 1x1 upsampler layer: the input times ``w_avg ** -1/2`` (``w_avg`` a scalar EMA of the
    input's mean square, updated in training), a demodulated modulated 1x1 conv without noise, for the
    upsampling ``conv0`` StyleNeRF's ``pixelshuffle`` x2 (``nearest(x) + pixel_shuffle(adapter(x))``, the
    adapter 1x1 C -> C/4 with LReLU then C/4 -> 4C, then a [1, 3, 3, 1] blur padded 2 before and 1 after),
    then bias, LReLU x sqrt 2 and the clamp. x [N, C_in, r, r] -> [N, C_out, r * up, r * up]."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: int = 1,
                 conv_clamp: float | None = None, ema_beta: float = 0.999):
        super().__init__(in_channels, out_channels, w_dim, resolution, kernel_size=1, use_noise=False,
                         conv_clamp=conv_clamp)
        self.up, self.ema_beta = up, float(ema_beta)
        self.register_buffer("w_avg", torch.ones([]))
        if up == 2:
            self.adapter = nn.Sequential(Conv2dLayer(out_channels, out_channels // 4, 1, activation="lrelu"),
                                         Conv2dLayer(out_channels // 4, out_channels * 4, 1))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: NoiseMode = "const", fused_modconv: bool = True,
                gain: float = 1, update_emas: bool = False) -> torch.Tensor:
        if update_emas:
            self.w_avg.copy_(x.detach().float().square().mean().lerp(self.w_avg, self.ema_beta))
        x = x * torch.rsqrt(self.w_avg)
        x = modulated_conv2d(x, self.weight, self.affine(w), demodulate=True, fused=fused_modconv)
        if self.up == 2:
            x = F.interpolate(x, scale_factor=2, mode="nearest") + F.pixel_shuffle(self.adapter(x), 2)
            x = upfirdn2d(x, self.resample_filter, padding=(2, 1, 2, 1))
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=self.act_gain * gain, clamp=clamp)


class StyleNeRFBlock(nn.Module):
    """One octave of StyleNeRF's upsampler: ``conv0`` (x2), ``conv1``, ``torgb`` (1x1, clamped); the
    image is ``upsample2d(img) + torgb(x)``. ws [N, 3, w_dim]: conv0, conv1, torgb."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, conv_clamp: float | None,
                 ema_beta: float):
        super().__init__()
        self.register_buffer("resample_filter", setup_filter(DEFAULT_RESAMPLE_FILTER))
        self.conv0 = MagnitudeScaledLayer(in_channels, out_channels, w_dim, resolution, up=2, conv_clamp=conv_clamp,
                                          ema_beta=ema_beta)
        self.conv1 = MagnitudeScaledLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp,
                                          ema_beta=ema_beta)
        self.torgb = ToRGBLayer(out_channels, 3, w_dim, kernel_size=1, conv_clamp=conv_clamp)

    def forward(self, x: torch.Tensor, img: torch.Tensor, ws: torch.Tensor,
                update_emas: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv0(x, ws[:, 0], update_emas=update_emas)
        x = self.conv1(x, ws[:, 1], update_emas=update_emas)
        return x, upsample2d(img, self.resample_filter) + self.torgb(x, ws[:, 2])


@UPSAMPLERS.register("stylenerf")
class StyleNeRFUpsampler(_UpsamplerFacts, nn.Module):
    """StyleNeRF's upsampler: one :class:`StyleNeRFBlock` per octave above the rendering resolution (no
    same-size block), 1x1 kernels, ``pixelshuffle`` upsampling, magnitude-EMA input scales, conv clamp.
    The first block reads the rendered features after the 3 RGB channels, and its image input is the
    rendered RGB. ws: each block's conv0 and conv1, its toRGB sharing the next block's conv0 w
    (``num_ws = 2 blocks + 1``). Channels at res q: ``min(channel_base // q, channel_max)``."""

    needs_stylegan_ws = True

    @dataclass
    class Config(ComponentConfig):
        channel_base: int = 32768
        """Channels at res q = min(channel_base // q, channel_max) (StyleNeRF's fraction x 32768)."""
        channel_max: int = 512
        """Channel cap."""
        conv_clamp: float = 256.0
        """Clamp of every layer's output (0: none)."""
        magnitude_ema_beta: float = 0.999
        """Decay of the layers' input mean-square EMA (``w_avg``)."""

    def __init__(self, config: Config, channels: int, in_resolution: int, out_resolution: int, w_dim: int):
        super().__init__()
        octaves = _octaves(in_resolution, out_resolution)
        self.in_channels, self.in_resolution, self.w_dim = channels, in_resolution, w_dim
        self.block_resolutions = [in_resolution * 2**k for k in range(1, octaves + 1)]
        clamp = float(config.conv_clamp) or None
        previous = channels - 3
        for res in self.block_resolutions:
            out = min(config.channel_base // res, config.channel_max)
            setattr(self, f"b{res}", StyleNeRFBlock(previous, out, w_dim, res, clamp, config.magnitude_ema_beta))
            previous = out
        self.num_ws = 2 * octaves + 1

    @staticmethod
    def tiny(config: Config) -> Config:
        return config.replace(channel_base=256, channel_max=16)

    def forward(self, features: torch.Tensor, ws: torch.Tensor, max_resolution: int | None = None,
                alpha: float = 1.0, update_emas: bool = False) -> torch.Tensor:
        """features [N, 3 + C, r, r], ws [N, num_ws, w_dim] -> image [N, 3, R, R] (unbounded); progressive
        growing (``max_resolution``, ``alpha``) as :class:`StyleGANUpsampler`."""
        _check_features(features, self.in_channels, self.in_resolution)
        if ws.ndim != 3 or ws.shape[0] != features.shape[0] or ws.shape[1] < self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"expected ws [{features.shape[0]}, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        x, img = features[:, 3:], features[:, :3]
        for k, res in enumerate(self.block_resolutions):
            block = getattr(self, f"b{res}")
            below = img
            x, img = block(x, img, ws[:, 2 * k: 2 * k + 3], update_emas=update_emas)
            if res == max_resolution:
                if alpha < 1:
                    img = torch.lerp(upsample2d(below, block.resample_filter), img, alpha)
                break
        return img

    def upsample(self, features, ws, noise_mode="const", max_resolution=None, fade_alpha=1.0):
        image = self(features, ws, max_resolution=max_resolution, alpha=fade_alpha, update_emas=self.training)
        return image, features[:, :3]
